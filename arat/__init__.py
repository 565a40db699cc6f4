__version__ = "0.1.0"

# fastai.layers' `@torch.jit.script` decorators warn at import on torch >= 2.9 (a FutureWarning naming the installed
# torch's path). It is fastai's, not ours: silence exactly that warning, once, for whichever arat module comes first.
import warnings as _warnings
with _warnings.catch_warnings():
    _warnings.filterwarnings('ignore', message=r'`torch\.jit\.script` is deprecated', category=FutureWarning)
    import fastai.layers as _fastai_layers
