"""Tests for train.report.gradcam: Grad-CAM against independent computations, hooks, helpers."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from helpers.images import denormalize, plot_gradcam_grid
from train.model import IMAGENET_MEAN, IMAGENET_STD
from train.report.gradcam import (
    ActivationRecorder,
    find_target_layer,
    grad_cam,
    heatmap_peak,
    overlay,
    pointing_game,
)


# ---------------------------------------------------------------- helpers / models


def _all_hooks(model):
    return {
        name: (len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks),
               len(getattr(m, "_backward_pre_hooks", {})))
        for name, m in model.named_modules()
    }


def _normalise_np(cam):
    lo, hi = cam.min(), cam.max()
    return np.zeros_like(cam) if hi - lo <= 1e-12 else (cam - lo) / (hi - lo)


class GapLinearModel(nn.Module):
    """1x1 conv (fixed weights) -> global average pool -> linear: Grad-CAM is known in closed form."""

    def __init__(self, conv_w, conv_b, lin_w, stride=1):
        super().__init__()
        c_out, c_in = conv_w.shape
        self.conv = nn.Conv2d(c_in, c_out, kernel_size=1, stride=stride)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_out, lin_w.shape[0])
        with torch.no_grad():
            self.conv.weight.copy_(torch.as_tensor(conv_w, dtype=torch.float32)[:, :, None, None])
            self.conv.bias.copy_(torch.as_tensor(conv_b, dtype=torch.float32))
            self.fc.weight.copy_(torch.as_tensor(lin_w, dtype=torch.float32))
            self.fc.bias.fill_(0.3)

    def forward(self, x):
        return self.fc(self.pool(self.conv(x)).flatten(1))


def _known_setup(seed=0, n=3, c_out=5, k=4, size=8):
    rng = np.random.default_rng(seed)
    conv_w = rng.normal(size=(c_out, 3))
    conv_b = rng.normal(size=c_out)
    lin_w = rng.normal(size=(k, c_out))
    x = rng.normal(size=(n, 3, size, size))
    return conv_w, conv_b, lin_w, x


def _small_cnn(num_classes=3):
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
        nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(inplace=True),
        nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, num_classes),
    )


def _autograd_reference(features, head, x, targets):
    """Grad-CAM from a manually split model, gradients via torch.autograd.grad, no hooks."""
    with torch.enable_grad():
        acts = features(x).detach().requires_grad_(True)
        logits = head(acts.clone())  # clone: the head may start with an in-place ReLU
        score = logits[torch.arange(len(x)), torch.as_tensor(targets)].sum()
        (grads,) = torch.autograd.grad(score, acts)
    weights = grads.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * acts.detach()).sum(1, keepdim=True))
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    return np.stack([_normalise_np(c) for c in cam.numpy().astype(np.float64)])


# ---------------------------------------------------------------- (1) known answers


@pytest.mark.parametrize("targets", [[0, 1, 3], [2, 2, 2]])
def test_matches_closed_form_for_gap_linear_head(targets):
    conv_w, conv_b, lin_w, x = _known_setup()
    model = GapLinearModel(conv_w, conv_b, lin_w)
    cams = grad_cam(model, torch.tensor(x, dtype=torch.float32), target_layer=model.conv,
                    target_class=targets)

    # Hand computation in numpy: A_c = conv(x), d logit_k / d A_c(i, j) = W[k, c] / (h*w).
    acts = np.einsum("oc,nchw->nohw", conv_w, x) + conv_b[None, :, None, None]
    h, w = acts.shape[-2:]
    expected = []
    for i, k in enumerate(targets):
        weights = lin_w[k] / (h * w)
        cam = np.maximum(np.einsum("c,chw->hw", weights, acts[i]), 0.0)
        expected.append(_normalise_np(cam))  # same size as input: upsampling is the identity
    np.testing.assert_allclose(cams.numpy(), np.stack(expected), atol=1e-5)


def test_closed_form_with_downsampling_layer():
    conv_w, conv_b, lin_w, x = _known_setup(seed=1, size=12)
    model = GapLinearModel(conv_w, conv_b, lin_w, stride=3)  # 12 px -> 4x4 features
    cams = grad_cam(model, torch.tensor(x, dtype=torch.float32), target_layer=model.conv, target_class=1)

    acts = np.einsum("oc,nchw->nohw", conv_w, x[:, :, ::3, ::3]) + conv_b[None, :, None, None]
    assert acts.shape[-2:] == (4, 4)
    raw = np.maximum(np.einsum("c,nchw->nhw", lin_w[1] / 16.0, acts), 0.0)
    up = F.interpolate(torch.tensor(raw)[:, None], size=(12, 12), mode="bilinear", align_corners=False)[:, 0]
    expected = np.stack([_normalise_np(c) for c in up.numpy()])
    np.testing.assert_allclose(cams.numpy(), expected, atol=1e-5)


def test_matches_autograd_reference_on_cnn():
    model = _small_cnn()
    # Non-trivial BatchNorm statistics, so that eval mode matters.
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(8, 3, 16, 16) * 2 + 1)
    model.eval()
    x = torch.randn(4, 3, 16, 16)
    target_layer = model[4]  # BatchNorm2d, followed by an in-place ReLU
    targets = [0, 2, 1, 1]
    cams = grad_cam(model, x, target_layer=target_layer, target_class=targets)
    expected = _autograd_reference(model[:5], model[5:], x, targets)
    np.testing.assert_allclose(cams.numpy(), expected, atol=1e-5)


def test_default_class_is_prediction_and_batch_is_per_image():
    model = _small_cnn(num_classes=4).eval()
    x = torch.randn(5, 3, 16, 16)
    with torch.no_grad():
        pred = model(x).argmax(1)
    layer = model[6]
    default = grad_cam(model, x, target_layer=layer)
    explicit = grad_cam(model, x, target_layer=layer, target_class=pred)
    torch.testing.assert_close(default, explicit)
    singles = torch.cat([grad_cam(model, x[i:i + 1], target_layer=layer, target_class=int(pred[i]))
                         for i in range(len(x))])
    torch.testing.assert_close(default, singles, atol=1e-5, rtol=0)


# ---------------------------------------------------------------- (2) localisation


class BrightSpotDetector(nn.Module):
    """Logit 1 grows with bright pixels in channel 0 (ImageNet-normalised input)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(4, 4, 3, stride=2, padding=1), nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
        with torch.no_grad():
            for conv in (self.features[0], self.features[2]):
                conv.weight.zero_()
                conv.bias.fill_(-0.5)
            self.features[0].weight[:, 0] = 1.0 / 9.0
            self.features[2].weight[:, :] = 1.0 / 36.0
            self.features[2].bias.fill_(0.0)
            self.head[2].weight.copy_(torch.tensor([[-1.0] * 4, [1.0] * 4]))
            self.head[2].bias.zero_()

    def forward(self, x):
        return self.head(self.features(x))


@pytest.mark.parametrize("quadrant", ["tl", "tr", "bl", "br"])
def test_peak_lands_in_quadrant_with_pattern(quadrant):
    size = 32
    img = np.full((size, size, 3), 20, dtype=np.uint8)
    y0 = 4 if quadrant[0] == "t" else 20
    x0 = 4 if quadrant[1] == "l" else 20
    img[y0:y0 + 6, x0:x0 + 6] = 250
    x = (torch.tensor(img, dtype=torch.float32).permute(2, 0, 1) / 255.0
         - torch.tensor(IMAGENET_MEAN)[:, None, None]) / torch.tensor(IMAGENET_STD)[:, None, None]
    model = BrightSpotDetector()
    cam = grad_cam(model, x[None], target_class=1)[0]
    y, xx = heatmap_peak(cam)
    assert (y < size // 2) == (quadrant[0] == "t")
    assert (xx < size // 2) == (quadrant[1] == "l")
    box = [x0 / size, y0 / size, (x0 + 6) / size, (y0 + 6) / size]
    assert pointing_game(cam[None], [box]) == 1.0
    # Far from the spot the map is (near) zero.
    far_y, far_x = (size - 2 if quadrant[0] == "t" else 1), (size - 2 if quadrant[1] == "l" else 1)
    assert cam[far_y, far_x] < 0.05


# ---------------------------------------------------------------- (3) hooks and state


class Probe(nn.Module):
    """Records the training flag during forward; can be told to raise."""

    def __init__(self):
        super().__init__()
        self.seen_training = []
        self.fail = False

    def forward(self, x):
        self.seen_training.append(self.training)
        if self.fail:
            raise RuntimeError("boom")
        return x


def _probed_model():
    torch.manual_seed(0)
    probe = Probe()
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), probe,
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    return model, probe


def test_hooks_removed_mode_and_requires_grad_restored():
    model, probe = _probed_model()
    user_hook = model[0].register_forward_hook(lambda *a: None)  # a user's hook must survive
    model.train()
    model[1].eval()  # mixed modes, e.g. frozen BatchNorm
    model[0].weight.requires_grad_(False)
    before_hooks = _all_hooks(model)
    before_modes = {n: m.training for n, m in model.named_modules()}
    before_flags = {n: p.requires_grad for n, p in model.named_parameters()}

    cams = grad_cam(model, torch.randn(2, 3, 8, 8), target_layer=model[0])

    assert cams.shape == (2, 8, 8)
    assert probe.seen_training == [False]  # the explanation ran in eval mode
    assert _all_hooks(model) == before_hooks
    assert len(model[0]._forward_hooks) == 1 and len(model[0]._backward_hooks) == 0
    assert {n: m.training for n, m in model.named_modules()} == before_modes
    assert {n: p.requires_grad for n, p in model.named_parameters()} == before_flags
    assert all(p.grad is None for p in model.parameters())  # no gradient pollution
    user_hook.remove()
    assert all(v == (0, 0, 0, 0) for v in _all_hooks(model).values())


def test_cleanup_after_exception_in_forward_and_bad_target():
    model, probe = _probed_model()
    model.train()
    model[6].weight.requires_grad_(False)
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    probe.fail = True
    with pytest.raises(RuntimeError, match="boom"):
        grad_cam(model, torch.randn(2, 3, 8, 8), target_layer=model[0])
    assert all(v == (0, 0, 0, 0) for v in _all_hooks(model).values())
    assert all(m.training for m in model.modules())
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags

    probe.fail = False
    with pytest.raises(ValueError, match="out of range"):
        grad_cam(model, torch.randn(2, 3, 8, 8), target_layer=model[0], target_class=7)
    assert all(v == (0, 0, 0, 0) for v in _all_hooks(model).values())
    assert all(m.training for m in model.modules())
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags


def test_activation_recorder_context_manager():
    conv = nn.Conv2d(3, 2, 1)
    with pytest.raises(KeyError):
        with ActivationRecorder(conv) as rec:
            assert len(conv._forward_hooks) == 1
            out = conv(torch.randn(1, 3, 4, 4))
            torch.testing.assert_close(rec.activations, out)
            raise KeyError("inside")
    assert len(conv._forward_hooks) == 0


def test_layer_not_called_and_non_spatial_layer_raise():
    model = _small_cnn()
    with pytest.raises(ValueError, match="not called"):
        grad_cam(model, torch.randn(1, 3, 8, 8), target_layer=nn.Conv2d(3, 3, 1))
    with pytest.raises(ValueError, match="expected \\(N, C, h, w\\)"):
        grad_cam(model, torch.randn(1, 3, 8, 8), target_layer=model[-1])
    assert all(v == (0, 0, 0, 0) for v in _all_hooks(model).values())


# ---------------------------------------------------------------- (4) output contract


def test_output_shape_dtype_range_and_per_image_normalisation():
    model = _small_cnn().eval()
    x = torch.randn(3, 3, 20, 24)
    x[1] *= 5.0  # very different scale per image: still each normalised to [0, 1]
    cams = grad_cam(model, x, target_layer=model[3])
    assert cams.shape == (3, 20, 24) and cams.dtype == torch.float32
    assert not torch.isnan(cams).any()
    assert cams.min() >= 0.0 and cams.max() <= 1.0
    for cam in cams:
        if cam.max() > 0:
            assert cam.min().item() == pytest.approx(0.0, abs=1e-6)
            assert cam.max().item() == pytest.approx(1.0, abs=1e-6)


def test_all_zero_map_stays_zero_without_nan():
    conv_w, conv_b, _, x = _known_setup()
    # Positive activations everywhere but negative class weights: ReLU kills the whole map.
    model = GapLinearModel(np.zeros_like(conv_w), np.ones(5), -np.ones((2, 5)))
    cams = grad_cam(model, torch.tensor(x, dtype=torch.float32), target_layer=model.conv, target_class=0)
    assert torch.equal(cams, torch.zeros_like(cams))


def test_target_class_int_list_tensor_and_validation():
    model = _small_cnn(num_classes=3).eval()
    x = torch.randn(2, 3, 16, 16)
    layer = model[6]
    as_int = grad_cam(model, x, target_layer=layer, target_class=2)
    torch.testing.assert_close(as_int, grad_cam(model, x, target_layer=layer, target_class=[2, 2]))
    torch.testing.assert_close(as_int, grad_cam(model, x, target_layer=layer, target_class=torch.tensor([2, 2])))
    mixed = grad_cam(model, x, target_layer=layer, target_class=(0, 2))
    torch.testing.assert_close(mixed[1], as_int[1])
    torch.testing.assert_close(mixed[0], grad_cam(model, x[:1], target_layer=layer, target_class=0)[0])
    with pytest.raises(ValueError, match="entries"):
        grad_cam(model, x, target_layer=layer, target_class=[0, 1, 2])
    with pytest.raises(ValueError, match="out of range"):
        grad_cam(model, x, target_layer=layer, target_class=[0, -1])
    with pytest.raises(TypeError):
        grad_cam(model, x, target_layer=layer, target_class=[0.5, 1.0])


def test_single_logit_binary_model_and_no_grad_context():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(4, 1), nn.Flatten(0))  # output (N,)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        cams = grad_cam(model, x)
    expected = _autograd_reference(model[:1], lambda a: model[1:](a)[:, None], x, [0, 0])
    np.testing.assert_allclose(cams.numpy(), expected, atol=1e-5)


# ---------------------------------------------------------------- (5) torchvision resnet18


def _resnet18():
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None, num_classes=2).eval()


def test_resnet18_plain_default_layer_and_reference():
    net = _resnet18()
    assert find_target_layer(net) is net.layer4[-1]
    x = torch.randn(2, 3, 64, 64)
    cams = grad_cam(net, x, target_class=[1, 0])
    torch.testing.assert_close(cams, grad_cam(net, x, target_layer=net.layer4[-1], target_class=[1, 0]))
    features = nn.Sequential(*list(net.children())[:-2])
    head = nn.Sequential(net.avgpool, nn.Flatten(), net.fc)
    np.testing.assert_allclose(cams.numpy(), _autograd_reference(features, head, x, [1, 0]), atol=1e-4)
    assert cams.shape == (2, 64, 64) and 0.0 <= cams.min() and cams.max() <= 1.0


def test_resnet18_wrapped_as_body_head_sequential():
    net = _resnet18()
    body = nn.Sequential(*list(net.children())[:-2])
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 2))
    fastai_style = nn.Sequential(body, head).eval()
    assert find_target_layer(fastai_style) is net.layer4[-1]

    class WithBody(nn.Module):
        def __init__(self):
            super().__init__()
            self.body, self.head = body, head

        def forward(self, x):
            return self.head(self.body(x))

    with_body = WithBody().eval()
    assert find_target_layer(with_body) is net.layer4[-1]
    # A resnet behind a parameter-free preprocessing layer is found too.
    assert find_target_layer(nn.Sequential(nn.Identity(), net)) is net.layer4[-1]

    x = torch.randn(2, 3, 64, 64)
    cams = grad_cam(fastai_style, x)
    np.testing.assert_allclose(
        cams.numpy(), _autograd_reference(body, head, x, fastai_style(x).argmax(1)), atol=1e-4)
    torch.testing.assert_close(cams, grad_cam(with_body, x))
    assert all(v == (0, 0, 0, 0) for v in _all_hooks(fastai_style).values())


def test_find_target_layer_fallback_and_error():
    cnn = _small_cnn()
    assert find_target_layer(cnn) is cnn[6]  # last Conv2d-containing child
    staged = nn.Sequential(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()),
                           nn.Sequential(nn.Sequential(nn.Conv2d(4, 4, 3)), nn.Sequential(nn.Conv2d(4, 4, 3))),
                           nn.Flatten(), nn.LazyLinear(2))
    assert find_target_layer(staged) is staged[1][1]
    with pytest.raises(ValueError, match="no default Grad-CAM target layer"):
        find_target_layer(nn.Sequential(nn.Flatten(), nn.Linear(12, 2)))
    with pytest.raises(ValueError, match="no default Grad-CAM target layer"):
        grad_cam(nn.Sequential(nn.Flatten(), nn.Linear(12, 2)), torch.randn(1, 3, 2, 2))


# ---------------------------------------------------------------- (6) helpers


def test_heatmap_peak_and_pointing_game_on_hand_made_maps():
    a = np.zeros((10, 20))
    a[3, 15] = 1.0
    b = np.zeros((10, 20))
    b[8, 2] = 0.7
    c = torch.zeros(10, 20)
    c[0, 0] = 0.2
    assert heatmap_peak(a) == (3, 15)
    assert heatmap_peak(b) == (8, 2)
    assert heatmap_peak(c) == (0, 0)
    flat = np.zeros((12, 24))
    flat[0:3, 0:6] = 1.0  # an upsampled corner cell: a plateau out to the edges; its inner corner is the peak
    flat[9, 20] = 0.5
    assert heatmap_peak(flat) == (2, 5)
    strip = np.zeros((12, 24))
    strip[8:12, 10] = 1.0  # a bottom-edge cell: the strip's top end is the cell's centre
    assert heatmap_peak(strip) == (8, 10)
    boxes = [[0.5, 0.0, 1.0, 0.5],   # a: peak centre (0.775, 0.35) inside
             [0.5, 0.5, 1.0, 1.0],   # b: peak centre (0.125, 0.85) outside (x)
             [0.0, 0.0, 0.1, 0.1]]   # c: peak centre (0.025, 0.05) inside
    assert pointing_game([a, b, torch.as_tensor(c)], boxes) == pytest.approx(2 / 3)
    stacked = torch.stack([torch.as_tensor(a), torch.as_tensor(b)]).float()
    assert pointing_game(stacked, torch.tensor(boxes[:2])) == 0.5
    assert pointing_game(stacked, [[0, 0, 1, 1]] * 2) == 1.0
    with pytest.raises(ValueError):
        pointing_game([a], boxes)
    with pytest.raises(ValueError):
        pointing_game([], [])


def test_denormalize_roundtrip():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(6, 5, 3), dtype=np.uint8)
    t = (torch.tensor(img, dtype=torch.float32).permute(2, 0, 1) / 255.0
         - torch.tensor(IMAGENET_MEAN)[:, None, None]) / torch.tensor(IMAGENET_STD)[:, None, None]
    out = denormalize(t)
    assert out.dtype == np.uint8 and out.shape == (6, 5, 3)
    np.testing.assert_array_equal(out, img)
    assert denormalize(torch.full((3, 2, 2), 100.0)).min() == 255  # clipped


def test_overlay_blend_and_validation():
    from matplotlib import colormaps

    img = np.full((4, 6, 3), 200, dtype=np.uint8)
    heat = np.linspace(0, 1, 24).reshape(4, 6)
    np.testing.assert_array_equal(overlay(img, heat, alpha=0.0), img)
    jet = np.rint(colormaps["jet"](heat)[..., :3] * 255).astype(np.uint8)
    np.testing.assert_array_equal(overlay(img, heat, alpha=1.0), jet)
    half = overlay(img, torch.tensor(heat), alpha=0.5)
    assert half.dtype == np.uint8 and half.shape == (4, 6, 3)
    np.testing.assert_allclose(half, 0.5 * img + 0.5 * colormaps["jet"](heat)[..., :3] * 255, atol=0.51)
    with pytest.raises(ValueError):
        overlay(img, np.zeros((3, 6)))


def test_plot_gradcam_grid_writes_png(tmp_path):
    model = BrightSpotDetector()
    x = torch.randn(3, 3, 32, 32)
    cams = grad_cam(model, x, target_class=1)
    images = [denormalize(t) for t in x]
    path = plot_gradcam_grid(images, cams, ["real 0.9", "fake 0.8", "fake 0.6"],
                             tmp_path / "sub" / "grid.png", ncols=2)
    data = (tmp_path / "sub" / "grid.png").read_bytes()
    assert str(path).endswith("grid.png")
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    import matplotlib.image as mpimg

    arr = mpimg.imread(str(path))
    assert arr.shape[0] == 600 and arr.shape[1] == 600  # 2 rows x 2 cols of 3 inch at 100 dpi
    with pytest.raises(ValueError):
        plot_gradcam_grid(images, cams[:2], ["a", "b", "c"], tmp_path / "x.png")
