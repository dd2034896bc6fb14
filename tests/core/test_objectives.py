"""Objectives: values and gradients against independent float64 formulas and finite differences."""
import numpy as np
import pytest

from mixmin_core import ProxyOutputs
from mixmin_core.solver.objectives import EPS, make_objective

from .reference import reference_loss as _reference_loss


def _random(kind, rng, p=4, n=300, tokens=False):
    if kind == "binary":
        return ProxyOutputs(rng.uniform(0, 1, (p, n)), "binary", labels=rng.integers(0, 2, n))
    if kind == "mse":
        return ProxyOutputs(rng.normal(size=(p, n)), "mse", labels=rng.normal(size=n))
    counts = rng.integers(5, 50, n) if tokens else None
    return ProxyOutputs(-rng.uniform(1, 30, (p, n)), "loglik", token_counts=counts)


@pytest.mark.parametrize("kind,tokens", [("binary", False), ("mse", False), ("loglik", False), ("loglik", True)])
def test_loss_and_gradient_match_reference(kind, tokens):
    rng = np.random.default_rng(1)
    outputs = _random(kind, rng, tokens=tokens)
    w = rng.dirichlet(np.ones(outputs.n_sources)).astype(np.float32)
    loss, grad = make_objective(outputs).loss_grad(w)
    assert float(loss) == pytest.approx(_reference_loss(outputs, w), rel=1e-5)
    h = 1e-4
    fd = np.empty(outputs.n_sources)
    for p in range(outputs.n_sources):
        e = np.zeros(outputs.n_sources)
        e[p] = h
        fd[p] = (_reference_loss(outputs, w + e) - _reference_loss(outputs, w - e)) / (2 * h)
    if kind == "binary":
        # on the simplex only the gradient's tangent part matters (see BinaryObjective)
        grad, fd = grad - grad.mean(), fd - fd.mean()
    np.testing.assert_allclose(grad, fd, rtol=2e-3, atol=1e-4)
    assert grad.dtype == np.float32


def test_loglik_stable_for_very_negative_sequence_logprobs():
    rng = np.random.default_rng(0)
    values = -5000.0 - rng.uniform(0, 50, (3, 100))
    outputs = ProxyOutputs(values, "loglik", token_counts=np.full(100, 1000))
    w = np.array([0.2, 0.3, 0.5], dtype=np.float32)
    loss, grad = make_objective(outputs).loss_grad(w)
    assert np.isfinite(loss) and np.isfinite(grad).all()
    assert float(loss) == pytest.approx(_reference_loss(outputs, w), rel=1e-5)
    # the weighted gradient sums to -mean(1/T) at every w for the density mixture
    assert float(w @ grad) == pytest.approx(-1 / 1000, rel=1e-4)


def test_binary_clipping_keeps_loss_finite_at_hard_zero_and_one():
    outputs = ProxyOutputs([[0.0, 1.0], [0.0, 1.0]], "binary", labels=[1, 0])
    loss, grad = make_objective(outputs).loss_grad(np.array([0.5, 0.5], dtype=np.float32))
    assert np.isfinite(loss) and np.isfinite(grad).all()
    assert float(loss) == pytest.approx(-np.log(EPS), rel=1e-3)


def test_batched_weights_and_sample_weights_equal_resampled_problem():
    rng = np.random.default_rng(3)
    outputs = _random("binary", rng, n=50)
    obj = make_objective(outputs)
    idx = rng.integers(0, 50, 50)
    counts = np.bincount(idx, minlength=50).astype(np.float32) / 50
    W = rng.dirichlet(np.ones(4), size=3).astype(np.float32)
    loss_b, grad_b = obj.loss_grad(W, np.tile(counts, (3, 1)))
    resampled = make_objective(outputs.select(samples=idx))
    for i in range(3):
        loss_i, grad_i = resampled.loss_grad(W[i])
        assert loss_b[i] == pytest.approx(float(loss_i), rel=1e-5)
        np.testing.assert_allclose(grad_b[i], grad_i, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("kind,tokens", [("binary", False), ("mse", False), ("loglik", False), ("loglik", True)])
def test_column_blocks_give_the_single_pass_answer(kind, tokens):
    """Many small column blocks (with a ragged last one) equal one block: single and batched weights."""
    rng = np.random.default_rng(5)
    outputs = _random(kind, rng, p=5, n=1001, tokens=tokens)
    whole = make_objective(outputs, block_bytes=1 << 40)
    blocked = make_objective(outputs, block_bytes=4 * 5 * 64)
    whole.columns = blocked.columns = False  # numpy's products for one weight vector too (not the kernel)
    assert len(whole.blocks) == 1 and len(blocked.blocks) == 16
    w = rng.dirichlet(np.ones(5)).astype(np.float32)
    for a, b in [(whole.loss_grad(w), blocked.loss_grad(w))]:
        assert float(a[0]) == pytest.approx(float(b[0]), rel=1e-6)
        np.testing.assert_allclose(a[1], b[1], rtol=1e-5, atol=1e-6)
    W = rng.dirichlet(np.ones(5), size=3).astype(np.float32)
    S = rng.dirichlet(np.ones(1001), size=3).astype(np.float32)
    (la, ga), (lb, gb) = whole.loss_grad(W, S), blocked.loss_grad(W, S)
    np.testing.assert_allclose(la, lb, rtol=1e-6)
    np.testing.assert_allclose(ga, gb, rtol=1e-5, atol=1e-6 * np.abs(ga).max())
    loss_only, no_grad = blocked.loss_grad(W, S, need_grad=False)
    no_loss, grad_only = blocked.loss_grad(W, S, need_loss=False)
    assert no_grad is None and no_loss is None
    np.testing.assert_allclose(loss_only, lb, rtol=1e-6)
    np.testing.assert_array_equal(grad_only, gb)


@pytest.mark.parametrize("kind,tokens", [("binary", False), ("mse", False), ("loglik", False), ("loglik", True)])
def test_one_read_kernel_matches_the_reference_and_the_column_products(tmp_path, kind, tokens, monkeypatch):
    """Many sources over several blocks take the numba kernel (in memory and streamed from a saved file);
    it gives the float64 reference loss and the column products' gradient, on one thread or two."""
    from mixmin_core.solver import objectives

    rng = np.random.default_rng(11)
    outputs = _random(kind, rng, p=40, n=4001, tokens=tokens)
    w = rng.dirichlet(np.ones(40)).astype(np.float32)
    products = make_objective(outputs, block_bytes=4 * 40 * 256)
    products.fused = False
    expected_loss, expected = products.loss_grad(w)
    assert float(expected_loss) == pytest.approx(_reference_loss(outputs, w), rel=1e-5)
    memory = make_objective(outputs, block_bytes=4 * 40 * 256)
    mapped = ProxyOutputs.load(outputs.save(tmp_path / "o", compress=False), mmap=True)
    streamed = make_objective(mapped, block_bytes=4 * 40 * 256)
    assert memory.fused and streamed.fused and streamed.streamed and len(streamed.blocks) > 1
    for threads in (1, 2):
        monkeypatch.setattr(objectives, "THREADS", threads)
        for objective in (memory, streamed):
            loss, grad = objective.loss_grad(w)
            assert float(loss) == pytest.approx(float(expected_loss), rel=1e-6)
            np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-6 * np.abs(expected).max())
    # a batch of weights (the bootstrap) goes through the products on the same matrix
    W = rng.dirichlet(np.ones(40), size=3).astype(np.float32)
    batch_loss, batch_grad = memory.loss_grad(W)
    for i in range(3):
        loss_i, grad_i = memory.loss_grad(W[i])
        assert batch_loss[i] == pytest.approx(float(loss_i), rel=1e-5)
        np.testing.assert_allclose(batch_grad[i], grad_i, rtol=1e-4, atol=1e-6 * np.abs(grad_i).max())


@pytest.mark.parametrize("kind,tokens", [("binary", False), ("mse", False), ("loglik", False), ("loglik", True)])
@pytest.mark.parametrize("n_sources", [2, 7, 31])
def test_column_kernel_matches_the_reference_and_the_products(kind, tokens, n_sources, monkeypatch):
    """Few sources in memory take the source-major kernel (four sources at a time, so 2, 7 and 31 leave
    every remainder); it gives the float64 reference loss and the products' gradient, on one thread or two."""
    from mixmin_core.solver import kernels, objectives

    rng = np.random.default_rng(12)
    outputs = _random(kind, rng, p=n_sources, n=70_001, tokens=tokens)  # several kernel steps, a ragged last
    w = rng.dirichlet(np.ones(n_sources)).astype(np.float32)
    objective = make_objective(outputs)
    assert objective.columns and not objective.fused
    products = make_objective(outputs, block_bytes=4 * n_sources * 4096)
    products.columns = False
    expected_loss, expected = products.loss_grad(w)
    assert float(expected_loss) == pytest.approx(_reference_loss(outputs, w), rel=1e-5)
    for threads, split_bytes in ((1, objectives.COLUMNS_THREAD_BYTES), (2, 0)):
        monkeypatch.setattr(objectives, "THREADS", threads)
        monkeypatch.setattr(objectives, "COLUMNS_THREAD_BYTES", split_bytes)
        loss, grad = objective.loss_grad(w)
        assert float(loss) == pytest.approx(float(expected_loss), rel=1e-6)
        np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-6 * np.abs(expected).max())
    with pytest.raises(TypeError):  # compiled for float32 only, like the row kernel
        m = np.zeros(4, np.float32)
        kernels.fused_columns(np.zeros((2, 4)), 0, np.zeros(2, np.float32), kernels.BINARY, m, m, m,
                              np.zeros(2, np.float32))


def test_vectorised_log_is_within_two_ulp_and_keeps_the_special_values():
    from mixmin_core.solver import kernels

    rng = np.random.default_rng(13)
    x = np.exp(rng.uniform(-87, 88, 200_001)).astype(np.float32)  # every binade of normal floats
    out = np.empty_like(x)
    kernels.log(x, out)
    exact = np.log(x.astype(np.float64))
    ulp = np.abs(out - exact) / np.spacing(np.abs(exact).astype(np.float32))
    assert ulp.max() <= 2.0 and out.dtype == np.float32
    special = np.array([0.0, -0.0, -1.0, np.inf, -np.inf, np.nan, 1e-40, 1.0], np.float32)  # 1e-40: subnormal
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = np.log(special)
    kernels.log(special, special)  # in place
    np.testing.assert_array_equal(special, expected)


def test_float16_bits_convert_exactly_for_every_pattern():
    """The row kernel's float16 reads (hardware conversion) equal numpy's for all 65,536 bit patterns."""
    import numba

    from mixmin_core.solver import kernels

    if not kernels.HALF_SUPPORTED:
        pytest.skip("this CPU has no hardware float16 conversion")

    @numba.njit
    def convert(bits, out):
        for k in range(bits.shape[0]):
            out[k] = kernels._as_float32(bits[k])

    bits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    out = np.empty(bits.size, np.float32)
    convert(bits, out)
    np.testing.assert_array_equal(out, bits.view(np.float16).astype(np.float32))  # NaN where NaN


@pytest.mark.parametrize("kind,tokens", [("binary", False), ("mse", False), ("loglik", True)])
def test_float16_storage_keeps_the_weights_within_1e3(kind, tokens):
    """storage='float16' (the row kernel's copy at half the bytes) solves to within 1e-3 (L1) of float32,
    one weight vector and a batch alike; where no such copy is made it stays float32 and says so."""
    from mixmin_core import mixmin
    from mixmin_core.solver import kernels

    if not kernels.HALF_SUPPORTED:
        pytest.skip("this CPU has no hardware float16 conversion")
    rng = np.random.default_rng(14)
    outputs = _random(kind, rng, p=40, n=4001, tokens=tokens)
    half = make_objective(outputs, block_bytes=4 * 40 * 256, storage="float16")
    full = make_objective(outputs, block_bytes=4 * 40 * 256)
    assert half.fused and half.storage == "float16" and half.matrix.dtype == np.uint16
    w = rng.dirichlet(np.ones(40)).astype(np.float32)
    (lh, gh), (lf, gf) = half.loss_grad(w), full.loss_grad(w)
    assert float(lh) == pytest.approx(float(lf), rel=1e-3)
    np.testing.assert_allclose(gh, gf, rtol=1e-2, atol=1e-3 * np.abs(gf).max())
    W = np.stack([w, w[::-1]])
    batch_loss, batch_grad = half.loss_grad(W)  # numpy's products on the decoded blocks
    assert batch_loss[0] == pytest.approx(float(lh), rel=1e-5)
    np.testing.assert_allclose(batch_grad[0], gh, rtol=1e-4, atol=1e-5 * np.abs(gh).max())

    big = ProxyOutputs(np.tile(outputs.values, (1, 60)), kind, labels=None if outputs.labels is None else
                       np.tile(outputs.labels, 60), token_counts=None if outputs.token_counts is None else
                       np.tile(outputs.token_counts, 60))  # 40 x 240,060: larger than cache, the row kernel
    exact, stored = mixmin(big, max_iter=50), mixmin(big, max_iter=50, storage="float16")
    assert stored.meta["storage"] == "float16"
    assert np.abs(stored.weights - exact.weights).sum() < 1e-3
    assert mixmin(outputs, max_iter=5, storage="float16").meta["storage"] == "float32"  # cache-sized: no copy


def test_float16_storage_refuses_values_it_cannot_hold_and_unknown_storage():
    from mixmin_core import mixmin
    from mixmin_core.errors import InputError

    rng = np.random.default_rng(15)
    outputs = ProxyOutputs(rng.normal(size=(40, 4001)) * 1e5, "mse", labels=rng.normal(size=4001))
    with pytest.raises(InputError, match="up to 65504"):
        make_objective(outputs, block_bytes=4 * 40 * 256, storage="float16")
    with pytest.raises(InputError, match="storage must be one of 'float32', 'float16'; got 'bfloat16'"):
        mixmin(outputs, storage="bfloat16")


def test_one_read_kernel_refuses_other_types():
    """The kernel is compiled for float32 only: a float64 array is a TypeError, never a silent upcast."""
    from mixmin_core.solver import kernels

    x = np.zeros((4, 3), np.float32)
    v = np.zeros(4, np.float32)
    g = np.zeros(3, np.float32)
    with pytest.raises(TypeError):
        kernels.fused_rows(x.astype(np.float64), g, kernels.BINARY, v, v, v, g, 0, 4)


@pytest.mark.parametrize("kind,tokens", [("binary", False), ("mse", False), ("loglik", True)])
@pytest.mark.parametrize("layout", ["saved", "source-major"])
def test_memory_mapped_values_stream_to_the_in_memory_answer(tmp_path, kind, tokens, layout):
    """Mapped values (a saved file, or a user's source-major np.memmap) are streamed, never copied."""
    from mixmin_core.solver import blocks

    rng = np.random.default_rng(8)
    outputs = _random(kind, rng, p=4, n=3000, tokens=tokens)
    if layout == "saved":
        mapped = ProxyOutputs.load(outputs.save(tmp_path / "o", compress=False), mmap=True)
    else:
        raw = np.lib.format.open_memmap(tmp_path / "v.npy", mode="w+", dtype=np.float32, shape=outputs.values.shape)
        raw[:] = outputs.values
        raw.flush()
        mapped = ProxyOutputs(np.load(tmp_path / "v.npy", mmap_mode="r"), kind, labels=outputs.labels,
                              token_counts=outputs.token_counts)
    assert blocks.is_mapped(mapped.values)
    streamed = make_objective(mapped, block_bytes=4 * 4 * 128)
    assert streamed.streamed and streamed.matrix is None and len(streamed.blocks) > 1
    memory = make_objective(outputs)
    w = rng.dirichlet(np.ones(4)).astype(np.float32)
    (la, ga), (lb, gb) = memory.loss_grad(w), streamed.loss_grad(w)
    assert float(lb) == pytest.approx(float(la), rel=1e-6)
    np.testing.assert_allclose(gb, ga, rtol=1e-5, atol=1e-6 * np.abs(ga).max())


def test_threads_share_blocks_without_changing_the_answer(monkeypatch):
    from mixmin_core.solver import objectives

    rng = np.random.default_rng(9)
    outputs = _random("binary", rng, p=6, n=20_000)
    objective = make_objective(outputs, block_bytes=6 * 4 * 256)
    w = rng.dirichlet(np.ones(6)).astype(np.float32)
    monkeypatch.setattr(objectives, "THREADS", 1)
    one = objective.loss_grad(w)
    monkeypatch.setattr(objectives, "THREADS", 3)
    assert len(objectives._split(len(objective.blocks), 3)) == 3
    three = objective.loss_grad(w)
    assert float(three[0]) == pytest.approx(float(one[0]), rel=1e-6)
    np.testing.assert_allclose(three[1], one[1], rtol=1e-6)


def test_threads_work_in_a_forked_child(monkeypatch):
    """The block thread pool is per process: a child forked after it was made still finishes."""
    import multiprocessing

    from mixmin_core.solver import objectives

    rng = np.random.default_rng(10)
    outputs = _random("mse", rng, p=4, n=20_000)
    objective = make_objective(outputs, block_bytes=4 * 4 * 256)
    monkeypatch.setattr(objectives, "THREADS", 2)
    w = np.full(4, 0.25, dtype=np.float32)
    expected = float(objective.loss_grad(w)[0])  # makes the pool in this process
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:
        got = pool.apply_async(_child_loss, (objective, w)).get(timeout=60)
    assert got == pytest.approx(expected, rel=1e-6)


def _child_loss(objective, w):
    from mixmin_core.solver import objectives

    objectives.THREADS = 2
    return float(objective.loss_grad(w)[0])


@pytest.mark.parametrize("p", [10, 40])
def test_samples_every_proxy_gets_wrong_add_nothing_to_the_gradient(p):
    """Where the clip holds the loss is flat. Each such sample added s / EPS to every source's gradient: 20 of
    2,000 buried the others' differences in float32, and MixMin reported "converged, gap 0" at wrong weights."""
    from mixmin_core import mixmin

    rng = np.random.default_rng(0)
    labels = (rng.random(2000) < 0.3).astype(np.float32)
    values = np.clip(0.3 + (0.5 - 0.01 * np.arange(p))[:, None] * (labels - 0.3) + rng.normal(0, 0.15, (p, 2000)),
                     0.01, 0.99)
    wrong = np.flatnonzero(labels == 0)[:20]
    values[:, wrong] = 1.0  # a negative that every proxy calls positive
    keep = np.setdiff1d(np.arange(2000), wrong)
    outputs = ProxyOutputs(values, "binary", labels=labels)
    clean = ProxyOutputs(values[:, keep], "binary", labels=labels[keep])
    w = rng.dirichlet(np.ones(p)).astype(np.float32)
    expected = make_objective(clean).loss_grad(w)[1] * np.float32(len(keep) / 2000)
    paths = [make_objective(outputs)] + ([make_objective(outputs, block_bytes=4 * p * 256)] if p >= 32 else [])
    for objective in paths:  # the column kernel (10), the numpy products and the row kernel (40)
        np.testing.assert_allclose(objective.loss_grad(w)[1], expected, rtol=1e-4, atol=1e-6)
    batch = make_objective(outputs).loss_grad(np.stack([w, w]), np.full((2, 2000), 1 / 2000, np.float32))[1]
    np.testing.assert_allclose(batch[0], expected, rtol=1e-4, atol=1e-6)
    assert np.abs(mixmin(outputs, max_iter=1000).weights - mixmin(clean, max_iter=1000).weights).sum() < 1e-3
