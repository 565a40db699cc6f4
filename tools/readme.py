"""README.md is nbs/index.ipynb's markdown (nbdev-readme needs Quarto, which these machines lack): write or check it."""
import json, sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent

def readme_text():
    nb = json.loads((root/'nbs'/'index.ipynb').read_text())
    md = [''.join(c['source']).strip() for c in nb['cells'] if c['cell_type'] == 'markdown']
    return '\n\n'.join(md) + '\n'

if __name__ == '__main__':
    if sys.argv[1:] == ['--write']: (root/'README.md').write_text(readme_text())
    elif (root/'README.md').read_text() != readme_text(): sys.exit("README.md is out of step with nbs/index.ipynb: run `python tools/readme.py --write`")
