"""PyTorch reference of jaxgen's Gatys objective, for ``experiments/style_gatys_vs_torch.py`` (not part of jaxgen;
run with the throwaway CPU torch venv: ``/work/torchvenv/bin/python experiments/style_gatys_torch_reference.py
IN.npz OUT.npz``).

Written from jcjohnson/neural-style's definitions, independently of jaxgen's code: the Caffe VGG19 (3x3 convs,
zero padding 1, ReLU, 2x2 max pooling) built from the same weights (arrays passed in ``IN.npz``, HWIO kernels),
content ``relu4_2`` MSE x 5, style Gram (``F F^T / (C H W)``) MSE x 100 over ``relu{1..5}_1``, TV ``1e-3 * 0.5 *
sum(dx^2 + dy^2)`` on the top-left ``(H-1)x(W-1)`` block, all on the image in the Caffe space (BGR, 0-255, minus
the pixel mean). Optimisers: ``torch.optim.LBFGS(history_size=100, line_search_fn='strong_wolfe')`` in one
``step`` of ``max_iter`` iterations (the accepted loss of every iteration is recorded by wrapping
``_strong_wolfe``), or ``torch.optim.Adam(lr=10)``.
"""

import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

BLOCKS = (2, 2, 4, 4, 4)


def build_vgg(params):
    """[(weight OIHW, bias)] of the 16 convs in order, from ``features_N`` HWIO kernels."""
    convs = []
    idx = 0
    for b, n in enumerate(BLOCKS):
        for i in range(n):
            k = params[f"features_{idx}.kernel"]
            convs.append((torch.from_numpy(np.ascontiguousarray(k.transpose(3, 2, 0, 1))),
                          torch.from_numpy(params[f"features_{idx}.bias"])))
            idx += 2
        idx += 1
    return convs


def features(x, convs, wanted):
    out, c = {}, 0
    for b, n in enumerate(BLOCKS, start=1):
        for i in range(1, n + 1):
            w, bias = convs[c]
            c += 1
            x = F.relu(F.conv2d(x, w, bias, padding=1))
            name = f"relu{b}_{i}"
            if name in wanted:
                out[name] = x
            if len(out) == len(wanted):
                return out
        x = F.max_pool2d(x, 2, 2)
    return out


def gram(f):
    _, c, h, w = f.shape
    m = f.reshape(c, h * w)
    return m @ m.t() / (c * h * w)


def to_caffe(rgb):  # [H,W,3] float in [0,1] -> [1,3,H,W]
    bgr = rgb[..., ::-1] * 255.0 - np.array([103.939, 116.779, 123.68])
    return torch.from_numpy(np.ascontiguousarray(bgr.transpose(2, 0, 1)[None], np.float32))


def main(inp, outp):
    torch.set_num_threads(int(np.load(inp)["threads"]))
    data = np.load(inp)
    params = {k[len("vgg/"):]: data[k] for k in data.files if k.startswith("vgg/")}
    convs = build_vgg(params)
    content_l, style_l = ["relu4_2"], ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
    cw, sw, tvw = 5.0, 100.0, 1e-3
    with torch.no_grad():
        ct = features(to_caffe(data["content"]), convs, content_l)
        st = {k: gram(v) for k, v in features(to_caffe(data["style"]), convs, style_l).items()}

    def parts(z):
        f = features(z, convs, content_l + style_l)
        content = sum(F.mse_loss(f[k], ct[k]) for k in content_l) * cw
        style = sum(F.mse_loss(gram(f[k]), st[k]) for k in style_l) * sw
        base = z[:, :, :-1, :-1]
        tv = 0.5 * (((base - z[:, :, :-1, 1:]) ** 2).sum() + ((base - z[:, :, 1:, :-1]) ** 2).sum()) * tvw
        return content, style, tv

    z = torch.from_numpy(data["init"].transpose(0, 3, 1, 2).copy()).requires_grad_(True)
    with torch.no_grad():
        at_init = [float(v) for v in parts(z)]
    steps, optimizer = int(data["steps"]), str(data["optimizer"])
    evals = [0]
    values = []

    def closure():
        opt.zero_grad()
        loss = sum(parts(z))
        loss.backward()
        evals[0] += 1
        return loss

    t0 = time.perf_counter()
    if optimizer == "lbfgs":
        import torch.optim.lbfgs as lb

        original = lb._strong_wolfe

        def recording(*a, **k):
            out = original(*a, **k)
            values.append(float(out[0]))
            return out

        lb._strong_wolfe = recording
        opt = torch.optim.LBFGS([z], lr=1, max_iter=steps, max_eval=steps * 100, tolerance_grad=-1,
                                tolerance_change=-1, history_size=100, line_search_fn="strong_wolfe")
        opt.step(closure)
    else:
        opt = torch.optim.Adam([z], lr=10.0)
        for _ in range(steps):
            values.append(float(opt.step(closure)))  # value before the update (as jaxgen's history)
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        c, s, t = parts(z)
    np.savez(outp, values=np.array(values), seconds=seconds, evals=evals[0], content=float(c), style=float(s),
             tv=float(t), total=float(c + s + t), at_init=np.array(at_init), result=z.detach().numpy().transpose(0, 2, 3, 1))
    print(f"torch {optimizer}: {steps} iterations, {evals[0]} evaluations, {seconds:.1f} s, "
          f"final total {float(c + s + t):.6g} (content {float(c):.4g}, style {float(s):.4g}, tv {float(t):.4g})")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
