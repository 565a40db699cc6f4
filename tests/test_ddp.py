"PyTorch DDP on 2 CPU processes (gloo): one step equals one process on the whole batch; α, β, metrics agree; --resume; no collective in the attack."
import os, sys, json, socket, subprocess, torch, torch.nn as nn, torch.distributed as dist, torch.multiprocessing as mp
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
ENV = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', OMP_WAIT_POLICY='PASSIVE', PYTHONWARNINGS='ignore')
COLLECTIVES = ('all_reduce', 'all_gather', 'all_gather_into_tensor', 'all_gather_object', 'broadcast', 'reduce_scatter',
               'reduce_scatter_tensor', 'barrier', '_broadcast_coalesced')

def _port():
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def _spawn(fn, tmp, *args, world=2):
    "Run `fn(rank, tmp, *args)` in `world` processes joined in a gloo process group; their results, in rank order."
    port, ctx = _port(), mp.get_context('spawn')
    ps = [ctx.Process(target=_entry, args=(fn, r, world, port, str(tmp), args)) for r in range(world)]
    for p in ps: p.start()
    for p in ps: p.join(300)
    assert [p.exitcode for p in ps] == [0] * world, f"a process failed: exit codes {[p.exitcode for p in ps]}"
    return [torch.load(Path(tmp)/f'rank{r}.pt', weights_only=False) for r in range(world)]

def _entry(fn, rank, world, port, tmp, args):
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world),
                      MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port), OMP_NUM_THREADS='1')
    torch.set_num_threads(1)
    import warnings; warnings.filterwarnings('ignore')
    dist.init_process_group('gloo')
    try: torch.save(fn(rank, *args), Path(tmp)/f'rank{rank}.pt')
    finally: dist.barrier(); dist.destroy_process_group()

def _learner(bs, f64=False, **kw):
    from fastai.callback.core import Callback
    from arat.all import arat_learner
    from arat.test_utils import tiny_dls, tiny_net
    torch.manual_seed(0)
    learn = arat_learner(tiny_dls(bs=bs, n_train=32, n_valid=16, augment=False), tiny_net(seed=0), **kw)
    if f64:   # float64: one process and two agree to rounding, however ill-conditioned the tiny net's BNs are
        class ToDouble(Callback):
            order = -10
            def before_batch(self): self.learn.xb = (self.learn.xb[0].double(),)
        class FloatLoss(Callback):
            order = 10   # after the method's loss, before the Recorder's float32 smoothing
            def after_loss(self): self.learn.loss = self.learn.loss.float()
        learn.model.double(); learn.add_cbs([ToDouble(), FloatLoss()])
    return learn

EXACT = dict(method='arat', attack_mode='eval', random_start=False, steps=2, auto_balance=False, robust_n=0, f64=True)

def _fit_exact(rank, kw):
    learn = _learner(16, **kw)
    with learn.distrib_ctx(cpu=True), learn.no_bar(), learn.no_logging(): learn.fit(1, 0.05)
    return {k: v.clone() for k, v in learn.model.state_dict().items()}

def _fit_counted(rank):
    "Two epochs of AR-AT (train-mode attack, random starts, AutoBalance, robust_acc); collectives counted in the attack."
    import arat.callbacks as C
    from fastai.callback.core import Callback
    from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook
    counts, state = dict(attack=0, train=0, attack_grads=0, train_grads=0), dict(attack=False)
    saved = {nm: getattr(dist, nm) for nm in COLLECTIVES}
    for nm, f in saved.items():
        def w(*a, _f=f, **k):
            counts['attack' if state['attack'] else 'train'] += 1
            return _f(*a, **k)
        setattr(dist, nm, w)
    pgd = C.pgd
    def counted_pgd(*a, **k):
        state['attack'] = True
        try: return pgd(*a, **k)
        finally: state['attack'] = False
    C.pgd = counted_pgd
    def hook(st, bucket):
        counts['attack_grads' if state['attack'] else 'train_grads'] += 1
        return allreduce_hook(st, bucket)
    class CommHook(Callback):
        order = 12   # after fastai's DistributedTrainer wrapped the model
        def before_fit(self): self.learn.model.register_comm_hook(None, hook)
    learn = _learner(8, method='arat', attack_mode='train', steps=2, robust_n=8, cbs=CommHook())
    preds = {id(p) for p in learn.model.arat_predictors.parameters()}
    try:
        with learn.distrib_ctx(cpu=True), learn.no_bar(), learn.no_logging():
            learn.fit(2, 0.02)
            ddp_params = {id(p) for p in learn.model.parameters()}
    finally:
        C.pgd = pgd
        for nm, f in saved.items(): setattr(dist, nm, f)
    ab = next(c for c in learn.cbs if type(c).__name__ == 'AutoBalance')
    return dict(counts=counts, history=ab.history, values=[list(map(float, v[:4])) for v in learn.recorder.values],
                preds_in_ddp=preds <= ddp_params, names=list(learn.recorder.metric_names))

def _fit_swa(rank):
    "SWA from Python under DDP: an average of every step, its BN statistics re-estimated, swapped into the model."
    from arat.all import SWACallback
    learn = _learner(8, method='at', steps=1, robust_n=0, swa=SWACallback(start=0, freq=1))
    with learn.distrib_ctx(cpu=True), learn.no_bar(), learn.no_logging(): learn.fit(1, 0.02)
    return dict(n_averaged=learn.swa.n_averaged, swapped=learn.swa.swapped,
                state={k: v.clone() for k, v in learn.model.state_dict().items()})

CLI = dict(n_train=32, n_valid=16, bs=8, epochs=2, width=4, steps=2, robust_n=8, eval_n=16, grad_sim=0, device='cpu', quiet=True)

def _all(rank, tmp):
    "Everything the tests below need from one pair of processes (each start imports torch and fastai: seconds)."
    from arat.cli import arat_train
    res = dict(exact=_fit_exact(rank, EXACT), counted=_fit_counted(rank), swa=_fit_swa(rank))
    whole, part = Path(tmp)/'whole', Path(tmp)/'part'
    import contextlib, io
    with contextlib.redirect_stdout(io.StringIO()) as f: arat_train(**CLI, out=str(whole))
    res['said'] = f.getvalue()
    arat_train(**CLI, out=str(part), stop_after=1)
    res['stopped'] = not (part/'model.pth').exists() and (part/'resume.pth').exists()
    arat_train(out=str(part), resume=True, device='cpu', quiet=True)
    arat_train(**{**CLI, 'epochs': 1, 'robust_n': 0}, out=str(Path(tmp)/'swa'), swa=True, swa_start=0, swa_freq=1)
    return res

@pytest.fixture(scope='module')
def ddp(tmp_path_factory):
    "The results of `_all` on two processes, and their folder."
    tmp = tmp_path_factory.mktemp('ddp')
    return _spawn(_all, tmp, str(tmp)), tmp

def test_one_step_equals_one_process(ddp):
    "2 processes × 16 images, SyncBN (both branches of every dual BN): the weights of one process on the 32 images."
    res = [r['exact'] for r in ddp[0]]
    ref = _learner(32, **EXACT)
    with ref.no_bar(), ref.no_logging(): ref.fit(1, 0.05)
    ref = ref.model.state_dict()
    for sd in res:
        assert list(sd) == list(ref)
        for k in ref:
            if not ref[k].is_floating_point(): assert torch.equal(sd[k], ref[k]), k; continue
            d = (sd[k] - ref[k]).abs().max().item()
            assert d <= 1e-5 * max(ref[k].abs().max().item(), 1e-3), f"{k}: max abs difference {d:.3g}"
    assert all(torch.equal(res[0][k], res[1][k]) for k in ref)   # the ranks: the same all-reduced gradients, the same update

def test_balance_metrics_and_no_collective_in_attack(ddp):
    "α, β and robust_acc are the same on both processes; the attack (train mode, SyncBN) makes no collective call."
    a, b = [r['counted'] for r in ddp[0]]
    assert a['preds_in_ddp'] and b['preds_in_ddp']
    for r in (a, b):
        assert r['counts']['attack'] == 0 and r['counts']['attack_grads'] == 0, r['counts']
        assert r['counts']['train'] > 0 and r['counts']['train_grads'] > 0, r['counts']
    assert a['history'] == b['history'] and len(a['history']) == 2   # counts summed over the ranks: the same on both
    i = a['names'].index('robust_acc') - 1   # values leave out the epoch column
    assert [v[i] for v in a['values']] == [v[i] for v in b['values']]
    from arat.all import AutoBalance
    one = _learner(8, method='arat', robust_n=0)
    ab = next(c for c in one.cbs if isinstance(c, AutoBalance))
    assert ab.measure() == a['history'][0]['alpha']   # before any step: the one process's figure (all 32 images measured)
    # (an accuracy: counts of argmaxes of the same initial model, batches of 8 in both; only a logit tie within rounding could differ)

def test_resume_under_ddp(ddp):
    "Stopped after an epoch and resumed under DDP: the weights and evaluation of the uninterrupted DDP run."
    whole, part = ddp[1]/'whole', ddp[1]/'part'
    assert all(r['stopped'] for r in ddp[0])
    assert [r['said'].count('arat-train: arat on sample') for r in ddp[0]] == [1, 0]   # process 0 alone speaks
    a, b = torch.load(whole/'model.pth'), torch.load(part/'model.pth')
    assert all(torch.equal(a[k], b[k]) for k in a)                         # resumed = uninterrupted, on one machine
    assert (whole/'eval.csv').read_text() == (part/'eval.csv').read_text()
    assert json.loads((whole/'config.json').read_text())['world_size'] == 2
    assert len(torch.load(whole/'resume.pth', weights_only=False)['rng_ranks']) == 2

def test_evaluation_is_the_one_process_one(ddp):
    "eval.csv of the 2-process run: the clean and PGD-20 accuracy one process measures on its model.pth."
    import pandas as pd
    from arat.train import load_run, final_eval, build_dls
    whole = ddp[1]/'whole'
    model, cfg = load_run(whole)
    t = final_eval(model, build_dls('sample', None, bs=8, n_train=32, n_valid=16, seed=0, device='cpu'), n=16, seed=0, progress=False)
    e = pd.read_csv(whole/'eval.csv').iloc[0]
    assert (t.iloc[0]['clean'], t.iloc[0]['pgd20']) == (e['clean'], e['pgd20'])   # the same function on the same images and seed

def test_resume_needs_the_same_number_of_processes(ddp):
    from fastcore.script import CliError
    from arat.cli import _check_world
    whole = ddp[1]/'whole'
    with pytest.raises(CliError, match=r'written by 2 process\(es\), this run has 1: resume it with 2'):
        _check_world(dict(world_size=1), torch.load(whole/'resume.pth', weights_only=False), whole)

def test_nproc_starts_torchrun(monkeypatch):
    "`arat-train --nproc 2 ...` runs `torchrun --nproc_per_node=2 -m arat.cli ...` (less --nproc); a real start takes a minute (see the notebook)."
    import arat.cli as cli
    calls = []
    monkeypatch.setattr(cli, 'is_cli', lambda f=None: True)
    monkeypatch.setattr(cli.subprocess, 'call', lambda cmd: calls.append(cmd) or 0)
    assert cli._launch(2, ['--nproc', '2', '--epochs', '1', '--nproc=2', '--quiet']) == 0
    assert calls == [[sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2', '-m', 'arat.cli', '--epochs', '1', '--quiet']]
    from fastcore.script import CliError
    with pytest.raises(CliError, match='--nproc must be a whole number >= 1, got 0'): cli.arat_train(nproc=0)

def test_swa_under_ddp(ddp):
    "SWA averages the model inside the DDP wrapper (from Python and from arat-train), and every process ends with the same average."
    a, b = [r['swa'] for r in ddp[0]]
    for r in (a, b): assert (r['n_averaged'], r['swapped']) == (2, True), r   # 16 images a process, bs 8: 2 steps, each averaged
    assert list(a['state']) == list(b['state']) and all(torch.equal(a['state'][k], b['state'][k]) for k in a['state'])
    swa = ddp[1]/'swa'
    ck, m = torch.load(swa/'resume.pth', weights_only=False), torch.load(swa/'model.pth')
    assert json.loads((swa/'config.json').read_text())['world_size'] == 2 and int(ck['model']['swa_model.n_averaged']) == 2
    k = 'conv1.weight'   # model.pth is the average (written after the fit), not the last weights (resume.pth, written at the epoch's end)
    assert torch.equal(m[k], ck['model'][f'swa_model.module.{k}']) and not torch.equal(m[k], ck['model'][k])
