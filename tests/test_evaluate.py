"Cross-module checks of `arat.evaluate` and `arat.report`: real data loaders, the training metric, split-BN models, callbacks' logs."
import copy, warnings
import numpy as np, pandas as pd, pytest
import torch, torch.nn as nn, torch.nn.functional as F
import matplotlib; matplotlib.use('Agg')
from arat.models import cifar_resnet18
from arat.dualbn import convert_dual_bn, use_bn, merge_dual_bn, dual_bns
from arat.attacks import pgd
from arat.evaluate import *
from arat.report import *

torch.set_num_threads(2)
CHEAP = dict(aa_version='cheap', aa_kwargs=dict(n_iter=5, n_target_classes=2), progress=False)


class ConstantNet(nn.Module):
    "Always predicts class `c`: exactly robust."
    def __init__(self, c=3, n_out=10):
        super().__init__(); self.c, self.n_out = c, n_out; self.w = nn.Parameter(torch.zeros(1))
    def forward(self, x):
        return F.one_hot(torch.full((len(x),), self.c), self.n_out).float()*5 + self.w * x.flatten(1).sum(1, keepdim=True) * 0


class BrightnessNet(nn.Module):
    "Class k wins when the mean pixel is nearest 0.3 + 0.02k: broken by a uniform shift of 8/255."
    def __init__(self, n_out=10):
        super().__init__(); self.register_buffer('centres', 0.3 + 0.02*torch.arange(n_out).float())
    def forward(self, x): return -1e3 * (x.flatten(1).mean(1, keepdim=True) - self.centres)**2


def brightness_data(n=20, n_out=10):
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % n_out
    x = (torch.rand(n,3,8,8, generator=g) - 0.5) * 0.2
    x = x - x.flatten(1).mean(1).view(-1,1,1,1) + (0.3 + 0.02*y).view(-1,1,1,1) + (torch.rand(n,1,1,1, generator=g)-0.5)*(4/255)
    return x.clamp(0, 1), y


@pytest.fixture(scope='module')
def dls():
    from arat.data import cifar10_sample_dls
    return cifar10_sample_dls(bs=32, n_train=64, n_valid=40, seed=0, device='cpu')


@pytest.fixture(scope='module')
def model(dls):
    "A width-4 ResNet-18 fitted on the validation images themselves: high clean accuracy, and something to break."
    torch.manual_seed(0)
    m = cifar_resnet18(width=4)
    opt = torch.optim.Adam(m.parameters(), lr=0.01)
    m.train()
    for _ in range(15):
        for xb, yb in dls.valid:
            xb, yb = xb.as_subclass(torch.Tensor), yb.as_subclass(torch.Tensor)
            opt.zero_grad(); F.cross_entropy(m(xb), yb).backward(); opt.step()
    return m.eval()


def test_standard_autoattack_exact_numbers():
    "Standard AutoAttack (all four attacks) on toy models whose answers are known: exactly robust, trivially broken."
    x, y = brightness_data()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        tc = evaluate_robustness(ConstantNet(c=3), (x[:6], torch.full((6,), 3)), attacks=('clean', 'autoattack'), progress=False)
        tb = evaluate_robustness(BrightnessNet(), (x, y), attacks=('clean', 'pgd20', 'autoattack'), progress=False)
    assert tc.iloc[0][['clean', 'autoattack', 'worst']].tolist() == [1., 1., 1.]
    assert tc.iloc[0]['aa_version'] == 'standard'
    assert tb.iloc[0][['clean', 'pgd20', 'autoattack', 'worst']].tolist() == [1., 0., 0., 0.]


def test_dataloaders_match_tensors(dls, model):
    "A fastai DataLoaders (its validation set, TensorImage batches) gives the same table as the same images as tensors."
    x, y = eval_tensors(dls, 24)
    assert type(x) is torch.Tensor and x.shape == (24, 3, 32, 32) and 0 <= x.min() and x.max() <= 1
    xv, yv = dls.valid.one_batch()
    assert torch.equal(x[:len(xv)][:24], xv.as_subclass(torch.Tensor)[:24].cpu())
    a = evaluate_robustness(model, dls, attacks=('clean', 'fgsm', 'pgd5'), n=24, progress=False)
    b = evaluate_robustness(model, (x, y), attacks=('clean', 'fgsm', 'pgd5'), progress=False)
    cols = ['clean', 'fgsm', 'pgd5', 'worst', 'n']
    assert a[cols].values.tolist() == b[cols].values.tolist()


def test_worst_case_is_per_example_and(dls, model):
    "The worst case never exceeds any single attack, and is the AND of the per-example results."
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        t, cor = evaluate_robustness(model, dls, attacks=('clean', 'fgsm', 'pgd10', 'autoattack'), n=32, bs=16,
                                     return_correct=True, **CHEAP)
    r = t.iloc[0]
    for a in ('clean', 'fgsm', 'pgd10', 'autoattack'): assert r['worst'] <= r[a]
    assert torch.equal(cor['worst'], cor['clean'] & cor['fgsm'] & cor['pgd10'] & cor['autoattack'])
    assert r['pgd10'] < r['clean']


def test_matches_training_metric(dls, model):
    "The callbacks' `robust_acc` metric (RobustAccuracy) and `evaluate_robustness` agree on the same subset and seed."
    from fastai.learner import Learner
    from arat.callbacks import RobustAccuracy
    learn = Learner(dls, model, loss_func=nn.CrossEntropyLoss(), metrics=RobustAccuracy(n=16, steps=5, seed=0))
    got = learn.validate()[1]
    t = evaluate_robustness(model, dls, attacks=('pgd5',), n=16, pgd_step=2/255, seed=0, progress=False)
    assert got == pytest.approx(t.iloc[0]['pgd5'])


def test_dual_bn_main_equals_deployable(dls, model):
    "A split-BN model is evaluated on its main BNs: the same numbers as the deployable (merged) model; aux = merged aux."
    from arat.callbacks import deployable_model
    dm = convert_dual_bn(copy.deepcopy(model))
    xb, _ = dls.train.one_batch()
    with use_bn(dm, 'aux'): dm.train(); dm(xb * 0.5); dm.eval()     # give the aux BNs different statistics
    atts = ('clean', 'pgd5')
    main = evaluate_robustness(dm, dls, attacks=atts, n=32, progress=False)
    plain = evaluate_robustness(deployable_model(dm), dls, attacks=atts, n=32, progress=False)
    assert main[list(atts)].values.tolist() == plain[list(atts)].values.tolist()
    t7 = bn_comparison(dm, dls, attacks=atts, n=32, progress=False)
    aux = evaluate_robustness(merge_dual_bn(dm, 'aux'), dls, attacks=atts, n=32, progress=False)
    assert t7.iloc[1][list(atts)].tolist() == aux.iloc[0][list(atts)].tolist()
    assert {d.route for d in dual_bns(dm)} == {'main'}


def test_feature_cosine_with_feature_taps(dls, model):
    "Table 4 through the lead's FeatureTaps: one row per tap, cos in [-1, 1], exactly 1 without perturbation."
    dm = convert_dual_bn(copy.deepcopy(model))
    fc = feature_cosine(dm, dls, spec='relus:layer4', n=16, progress=False)
    assert len(fc) == 4 and fc.cos.between(-1, 1).all()
    f0 = feature_cosine(dm, dls, spec='penultimate', eps=0., attack='pgd2', n=16, progress=False)
    assert f0.cos[0] == pytest.approx(1., abs=1e-5)


def test_sanity_checks_flag_quantised_model(dls, model):
    "A non-differentiable input quantisation makes gradient attacks blind: the checks flag it; the plain model passes."
    class Quantised(nn.Module):
        def __init__(self, m): super().__init__(); self.m = m
        def forward(self, x): return self.m(torch.round(x * 4) / 4)
    kw = dict(n=16, eps_sweep=(0, 8/255), more='pgd20r2', aa=False, progress=False)
    ok = sanity_checks(model, dls, **kw)
    bad = sanity_checks(Quantised(model), dls, **kw)
    assert ok.loc[['batch_size', 'deterministic', 'input_grads', 'large_eps'], 'passed'].all()
    assert not bad.loc['input_grads', 'passed'] and not bad.loc['large_eps', 'passed']


def test_grad_sim_plot_from_callback(dls):
    "`plot_grad_sim` draws the lead's GradSimCallback log: the mean over layers per step, as `GradSimCallback.summary`."
    import fastai.callback.progress  # Learner.no_bar
    from arat.callbacks import arat_learner, GradSimCallback
    torch.manual_seed(0)
    gs = GradSimCallback(every=1)
    learn = arat_learner(dls, cifar_resnet18(width=4), steps=1, robust_n=0, lr=0.05, cbs=gs)
    with learn.no_bar(), learn.no_logging(): learn.fit(1)
    assert {'step', 'layer', 'cos'} <= set(gs.stats.columns)
    ax = plot_grad_sim(gs)
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), gs.summary()['mean'].values)
    ax = plot_grad_sim({'run': gs.stats}, layer='all')
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), gs.stats.query("layer == 'all'").cos.values)


def test_report_on_dataloaders(dls, model, tmp_path):
    "`robustness_report` on real data and a split-BN model writes Markdown, HTML and the plots."
    dm = convert_dual_bn(copy.deepcopy(model))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        rep = robustness_report({'plain': model, 'dual': dm}, dls, tmp_path/'r.md', n=16, sanity_n=16,
                                sanity_kwargs=dict(more='pgd20r2', eps_sweep=(0, 8/255)), sweep=(0, 8/255), embed_n=40,
                                aa_version='cheap', aa_kwargs=dict(n_iter=5, n_target_classes=2), progress=False)
    md = (tmp_path/'r.md').read_text()
    assert '## Main vs auxiliary BNs (Table 7)' in md and '| dual |' in md
    assert (tmp_path/'r.html').read_text().count('data:image/png') == 3
    assert rep['table'].loc['plain', ['clean', 'pgd20']].tolist() == rep['table'].loc['dual', ['clean', 'pgd20']].tolist()
    assert len(rep['embedding']['plain']) == 40
