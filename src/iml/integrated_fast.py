"""The fast path of Integrated Gradients (Sundararajan et al. 2017, arXiv:1703.01365): the same
attributions as the exercise's `integrate_gradients` (src/mnist_integrated.py), computed faster.

- The first layer is affine: the CNN's standardisation and first convolution map the straight
  path to a straight path, so points are interpolated after them and the summed gradient is
  pulled back once per image (`split_affine_head`).
- Channels-last: convolution weights, and the activations after the first ReLU, are stored
  channels-last, on which a CPU pools several times faster (`ChannelsLast`).
- Autograd sums over the steps: the gradient with respect to a zero offset added to every point
  of a weighted sum of outputs is the weighted sum of the gradients (`weighted_path_output`).
- Chunks of at most `batch_points` path points keep memory flat for any N and m.
- Optional torch.compile, which fuses the element-wise work, and bfloat16 autocast.

tests/iml/test_integrated_fast.py shows that it equals the exercise's function, and the formula for
every rule and baseline, to 1e-10 in float64; `python src/mnist_integrated.py --fast` runs it.
"""

import functools

import torch
from torch import nn
from torch.func import functional_call, grad, vjp, vmap

from iml.attribution import as_baseline, default_batch_points, network_device, output_digits, require_eval_mode
from iml.quadrature import quadrature
from iml.validation import check_baseline, check_choice, check_count, check_flag, check_ig, check_same_shape
from models import CNN, MNIST_MEAN, MNIST_STD, functional_state

PRECISIONS = ("float32", "bfloat16")


class CompileError(RuntimeError):
    """torch.compile could not build its kernels (no C++ compiler on a CPU, no Triton on a GPU)."""


def split_affine_head(net):
    """(head, body) with body(head(x)) == net(x) and `head` affine in x.

    The image of the straight path x' + a (x - x') under an affine map is the straight path
    between the images of its ends, so IG can interpolate after the head: that skips the head
    for each of the N * m points and pulls the summed gradient back through it once per image.
    For the CNN the head is the standardisation and the first convolution; for any other
    network it is the identity.
    """
    if type(net) is CNN:
        conv = net.features[0]
        # The first ReLU may work in place: it overwrites path points that nothing else needs.
        # Its output is stored channels-last, like the convolution weights (see
        # models.functional_state): on a CPU, average pooling runs several times faster on that
        # layout, and the second convolution then reads it without reordering it.
        body = nn.Sequential(nn.ReLU(inplace=True), ChannelsLast(), *net.features[2:], net.classifier)
        return (lambda x: conv((x - MNIST_MEAN) / MNIST_STD)), body
    return (lambda x: x), net


class ChannelsLast(nn.Module):
    """The identity on (N, C, H, W) tensors, returning a copy stored channels-last.

    Written with permutes because `vmap` does not support `contiguous(memory_format=...)`.
    """

    def forward(self, x):
        """x (N, C, H, W) -> the same values (N, C, H, W), stored channels-last."""
        return x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)


def weighted_path_output(offset, z_input, z_base, alphas, weights, target, body, params, buffers, bfloat16):
    """sum_k w_k F(z_base + offset + alpha_k (z_input - z_base)) for one image and S steps.

    `offset` is zero; it is added to every point of the path, so its gradient is the weighted
    sum sum_k w_k dF/dz over the points, which autograd adds up. `body` runs with `params` and
    `buffers` (torch.func.functional_call), under bfloat16 autocast if `bfloat16`.
    """
    points = torch.addcmul(z_base + offset, alphas.view(-1, *(1,) * z_input.dim()), z_input - z_base)  # (S, C, H, W)
    with torch.autocast(points.device.type, dtype=torch.bfloat16, enabled=bfloat16):
        logits = functional_call(body, (params, buffers), (points,))  # (S, 10)
    return weights @ logits.gather(1, target.expand(len(logits), 1)).squeeze(1).to(weights)


# d/d offset, for a chunk of images (z_input, z_base, target batched) and the same S steps each
SUMMED_GRADIENT = vmap(grad(weighted_path_output), in_dims=(None, 0, 0, None, None, 0, None, None, None, None))


@functools.cache
def compiled_summed_gradient():
    """SUMMED_GRADIENT compiled by torch.compile, made once per process and reused.

    A compilation that fails (it happens at the first call) becomes a CompileError that says
    what is missing.
    """
    compiled = torch.compile(SUMMED_GRADIENT)

    def summed_gradient(*args):
        try:
            return compiled(*args)
        except torch._dynamo.exc.BackendCompilerFailed as error:
            reason = str(error).strip().splitlines()[0]
            raise CompileError(
                f"torch.compile failed ({reason}); it needs a C++ compiler on a CPU and Triton on a GPU"
            ) from None

    return summed_gradient


def integrate_gradients_fast(
    net,
    images,
    output_digit,
    steps_m=300,
    baseline=None,
    rule="right",
    batch_points=None,
    precision="float32",
    compile=False,
    progress=None,
):
    """Integrated Gradients as the exercise's `integrate_gradients`, fast; (N, 1, 28, 28). Arguments as
    there, plus baseline x' (None: black, a number, a tensor that broadcasts to `images`), `rule` and: the N * m path points go through `net` (on its device) in chunks of
    at most `batch_points` (None: `default_batch_points`), so memory stays flat for any N and m.
    precision "bfloat16" runs the network under autocast (faster on GPUs, less exact).
    compile: evaluate the chunks with torch.compile (the first call compiles, for seconds; the
    steps are padded with nodes of weight 0 and the images with copies of the last one, dropped at
    the end, so later calls reuse it); raises CompileError when no compiler is found.
    progress: a bar (iml.progress) that counts the path points done, or None.
    Returns the attributions on the device and in the dtype of `images`.
    """
    require_eval_mode(net, "integrate_gradients_fast")
    check_arguments(net, images, output_digit, steps_m, baseline, batch_points, precision, compile)
    device = network_device(net, images, "integrate_gradients_fast")
    x_all = images.to(device)  # (N, 1, 28, 28)
    base_all, digits = as_baseline(baseline, x_all), output_digits(output_digit, len(x_all), device)
    alphas, weights = quadrature(rule, steps_m, dtype=x_all.dtype, device=device)  # (m,), (m,)
    images_per_chunk, steps_per_chunk = chunk_sizes(batch_points or default_batch_points(device), steps_m)
    summed_gradient = SUMMED_GRADIENT
    if compile:
        summed_gradient = compiled_summed_gradient()
        # every chunk gets the same shape, so that torch.compile compiles once
        alphas, weights = pad_to_multiple(alphas, steps_per_chunk, 1.0), pad_to_multiple(weights, steps_per_chunk, 0.0)
        x_all, base_all, digits = (pad_to_multiple(t, images_per_chunk) for t in (x_all, base_all, digits))
    path = StraightPaths(net, summed_gradient, alphas, weights, steps_per_chunk, precision == "bfloat16")
    done = None if progress is None else (lambda count: progress.update(count * steps_m))
    with torch.no_grad():  # torch.func.grad still differentiates; nothing else builds a graph
        attributions = path.all_attributions(x_all, base_all, digits, images_per_chunk, len(images), done)
    return attributions[: len(images)].to(images.device)


def check_arguments(net, images, output_digit, steps_m, baseline, batch_points, precision, compile):
    """Refuse, before any work, what `integrate_gradients_fast` cannot use; the rule is quadrature's to check."""
    function = "integrate_gradients_fast"
    check_ig(net, images, output_digit, steps_m, function)
    check_baseline(baseline, images, function)
    if batch_points is not None:
        check_count(batch_points, "batch_points", function)
    check_choice(precision, "precision", function, PRECISIONS)
    check_flag(compile, "compile", function)


def chunk_sizes(batch_points, steps_m):
    """(images, steps) per chunk of at most `batch_points` path points: whole paths while they fit, else one path
    cut into pieces of `batch_points` steps."""
    return max(1, batch_points // steps_m), min(steps_m, batch_points)


def fast_twin(compile=False):
    """`integrate_gradients_fast` with the signature of the exercise's `integrate_gradients(net, test_images,
    output_digit, steps_m)` (black baseline, right sum), compiled by torch.compile if `compile`.

    A compilation that fails becomes the UserError a command line prints as one line.
    """
    from iml.cli import UserError

    def twin(net, test_images, output_digit, steps_m):
        try:
            return integrate_gradients_fast(net, test_images, output_digit, steps_m, compile=compile)
        except CompileError as error:
            raise UserError(f"{error}: install one, or run without --compile.") from None

    return twin


class StraightPaths:
    """The straight paths of a chunk of images through `net`, evaluated `steps_per_chunk` steps at a time."""

    def __init__(self, net, summed_gradient, alphas, weights, steps_per_chunk, bfloat16):
        self.head, self.body = split_affine_head(net)
        self.params, self.buffers = functional_state(self.body)  # convolution weights channels-last
        self.summed_gradient, self.bfloat16 = summed_gradient, bfloat16
        self.alphas, self.weights, self.steps_per_chunk = alphas, weights, steps_per_chunk

    def all_attributions(self, x_all, base_all, digits, images_per_chunk, count, done=None):
        """The attributions (N, 1, 28, 28) of all images, `images_per_chunk` at a time. After each chunk,
        `done` (if given) is called with its number of images among the first `count`, which are not padding."""
        chunks = []
        for s in range(0, len(x_all), images_per_chunk):
            chunk = slice(s, s + images_per_chunk)
            chunks.append(self.attributions(x_all[chunk], base_all[chunk], digits[chunk]))
            if done is not None:
                done(min(s + images_per_chunk, count) - s)
        return torch.cat(chunks) if chunks else torch.zeros_like(x_all)  # no images, no attributions

    def attributions(self, x, base, digits):
        """(x - x') * sum_k w_k dF/dx at the path points, for a chunk x, base (n, 1, 28, 28)."""
        z_input, z_base = self.head(x), self.head(base)  # (n, 32, 26, 26) for the CNN
        total = torch.zeros_like(z_input)
        for s in range(0, len(self.alphas), self.steps_per_chunk):
            steps = slice(s, s + self.steps_per_chunk)
            offset = torch.zeros_like(z_input[0])
            chunk = (offset, z_input, z_base, self.alphas[steps], self.weights[steps], digits)
            total += self.summed_gradient(*chunk, self.body, self.params, self.buffers, self.bfloat16)
        _, pull_back = vjp(self.head, x)  # the head is affine: its vjp maps sum_k w_k dF/dz to dF/dx
        return (x - base) * pull_back(total)[0]  # (n, 1, 28, 28)


def pad_to_multiple(values, multiple, fill=None):
    """`values` (K, ...) lengthened to a multiple of `multiple` rows: `fill`, or copies of the last row."""
    check_count(multiple, "multiple", "pad_to_multiple")
    missing = -len(values) % multiple
    if not missing:
        return values
    padding = values[-1:].expand(missing, *values.shape[1:])
    if fill is not None:
        padding = torch.full_like(padding, fill)
    return torch.cat([values, padding])


def precision_deviation(reduced, exact):
    """How far attributions (N, ...) computed in reduced precision lie from `exact` (float32) ones.

    Returns (largest |difference| / largest |exact|, median over the images of
    ||difference|| / ||exact||).
    """
    check_same_shape(reduced, "reduced", exact, "exact", "precision_deviation")
    difference = reduced.float() - exact.float()
    largest = float(difference.abs().max() / exact.abs().max())
    per_image = difference.flatten(1).norm(dim=1) / exact.float().flatten(1).norm(dim=1)
    return largest, float(per_image.median())
