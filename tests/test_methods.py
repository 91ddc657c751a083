"""Continual-learning methods: EASE, APER, replay, LwF on a two-block ViT-tiny at 32 px."""
import io
import math

import pytest
import torch
import torch.nn.functional as F

from zeroflow_core.methods import create_method
from zeroflow_core.methods.ease import complement_prototypes, semantic_complement
from zeroflow_core.models.vit import create_adapter_vit
from zeroflow_core.optim.registry import create_optimizer

N_CLASSES, PER_TASK, PER_CLASS = 6, 2, 3


def tiny_vit(seed=0):
    torch.manual_seed(seed)
    vit = create_adapter_vit("vit-tiny")
    vit.backbone.blocks = vit.backbone.blocks[:2]
    return vit


def make_method(name, vit_seed=0, **config):
    return create_method(name, tiny_vit(vit_seed), N_CLASSES, PER_TASK, **config)


def task_data(task, per_class=PER_CLASS, seed=0):
    g = torch.Generator().manual_seed(1000 * seed + task)
    y = torch.arange(task * PER_TASK, (task + 1) * PER_TASK).repeat_interleave(per_class)
    return torch.rand(len(y), 3, 32, 32, generator=g), y


def features_fn(method, x, y):
    @torch.no_grad()
    def features_of(adapter_set):
        was = method.training
        method.eval()
        f = method.vit.features(x, adapter_set)
        method.train(was)
        return f, y
    return features_of


def perturb_trainables(method, seed=0):
    """Stand-in for training: make adapters non-trivial (their up-projections start at zero)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in method.trainable_parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))


def run_tasks(method, n_tasks, train=perturb_trainables):
    """begin/train/end like the trainer; returns each task's (x, y)."""
    data = []
    for t in range(n_tasks):
        method.begin_task(t)
        x, y = task_data(t)
        if method.trains_on(t):
            train(method, seed=t)
        method.end_task(t, features_fn(method, x, y))
        data.append((x, y))
    return data


def ids(params):
    return {id(p) for p in params}


# -- EASE ----------------------------------------------------------------------------------------
def test_ease_begin_task_adds_and_freezes_sets():
    m = make_method("ease")
    m.begin_task(0)
    assert len(m.vit.adapter_sets) == 1 and len(m.heads) == 1
    assert ids(m.trainable_parameters()) == ids([*m.vit.adapter_sets[0].parameters(), *m.heads[0].parameters()])
    m.begin_task(1)
    assert len(m.vit.adapter_sets) == 2 and len(m.heads) == 2
    assert ids(m.trainable_parameters()) == ids([*m.vit.adapter_sets[1].parameters(), *m.heads[1].parameters()])
    assert m.heads[1].weight.shape[0] == PER_TASK
    m.begin_task(1)  # idempotent
    assert len(m.vit.adapter_sets) == 2


def test_ease_loss_uses_local_labels_of_current_head():
    m = make_method("ease").eval()
    m.begin_task(0)
    m.begin_task(1)
    x, y = task_data(1)
    logits = m.heads[1](m.vit.features(x, 1))
    assert torch.allclose(m.loss({"x": x, "y": y}), F.cross_entropy(logits, y - PER_TASK))


def test_ease_prototypes_are_class_means():
    m = make_method("ease").eval()
    data = run_tasks(m, 2)
    assert m.prototypes.shape == (2, 2 * PER_TASK, m.vit.embed_dim)
    with torch.no_grad():
        for t, (x, y) in enumerate(data):
            for s in range(t + 1):  # real prototypes: subspaces up to the class's own task
                f = m.vit.features(x, s)
                for c in y.unique().tolist():
                    torch.testing.assert_close(m.prototypes[s, c], f[y == c].mean(0))


def test_semantic_complement_by_hand():
    own = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    anchors_old = torch.tensor([[3.0, 0.0], [0.0, 1.0]])
    anchors_new = torch.tensor([[2.0, 0.0, 1.0], [0.0, 4.0, 1.0]])
    e = math.e
    w = torch.tensor([[e / (e + 1), 1 / (e + 1)], [1 / (1 + e), e / (1 + e)]])  # softmax of cos [[1,0],[0,1]]
    torch.testing.assert_close(semantic_complement(own, anchors_old, anchors_new), w @ anchors_new)


def test_complement_prototypes_matches_solve_sim_reset_by_hand():
    # three tasks of one class, 2-d subspaces; P[s, c] real for s <= c
    P = torch.zeros(3, 3, 2)
    P[0, 0], P[0, 1], P[0, 2] = torch.tensor([1.0, 0.0]), torch.tensor([1.0, 1.0]), torch.tensor([0.0, 1.0])
    P[1, 1], P[1, 2] = torch.tensor([2.0, 0.0]), torch.tensor([0.0, 2.0])
    P[2, 2] = torch.tensor([5.0, 7.0])
    out = complement_prototypes(P, classes_per_task=1)
    # real entries untouched
    for s, c in [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)]:
        assert torch.equal(out[s, c], P[s, c])
    # class 0 in subspace 1: anchors are classes 1, 2; cos in subspace 0 = [1/sqrt2, 0]
    a = math.exp(1 / math.sqrt(2))
    expected = (a * torch.tensor([2.0, 0.0]) + torch.tensor([0.0, 2.0])) / (a + 1)
    torch.testing.assert_close(out[1, 0], expected)
    # in the newest subspace the only anchor is class 2: its prototype is copied
    torch.testing.assert_close(out[2, 0], P[2, 2])
    torch.testing.assert_close(out[2, 1], P[2, 2])


def test_ease_end_task_recomputes_complement_with_all_newer_classes():
    m = make_method("ease").eval()
    run_tasks(m, 3)
    P = m.prototypes
    k = PER_TASK
    # task 0's classes in subspace 1 use the classes of tasks 1 and 2 as anchors
    expected = semantic_complement(P[0, :k], P[0, k:], P[1, k:])
    torch.testing.assert_close(P[1, :k], expected)


@pytest.mark.parametrize("use_init_ptm", [False, True])
def test_ease_logits_reweighting_by_hand(use_init_ptm):
    alpha, beta = 0.3, 0.7
    m = make_method("ease", alpha=alpha, beta=beta, use_init_ptm=use_init_ptm).eval()
    run_tasks(m, 3)
    x, _ = task_data(0, seed=5)
    with torch.no_grad():
        logits = m.logits(x)
        feats = [m.vit.features(x, s) for s in range(3)]
        ptm = m.vit.features(x, None)
    assert logits.shape == (len(x), N_CLASSES)
    expected = torch.zeros_like(logits)
    for c in range(N_CLASSES):
        own = c // PER_TASK
        for s in range(3):
            weight = 1.0 if s == own else alpha / 2  # t = 2
            expected[:, c] += weight * F.cosine_similarity(feats[s], m.prototypes[s, c][None], dim=1)
        if use_init_ptm:
            expected[:, c] += beta * F.cosine_similarity(ptm, m.ptm_prototypes[c][None], dim=1)
    torch.testing.assert_close(logits, m.prototype_scale * expected)


def test_ease_first_task_logits_are_plain_cosines():
    m = make_method("ease", alpha=5.0).eval()
    run_tasks(m, 1)
    x, _ = task_data(0, seed=3)
    with torch.no_grad():
        f = m.vit.features(x, 0)
        expected = F.normalize(f, dim=1) @ F.normalize(m.prototypes[0], dim=1).T
        torch.testing.assert_close(m.logits(x), m.prototype_scale * expected)


def test_ease_heldout_loss_splits_current_and_old():
    m = make_method("ease").eval()
    run_tasks(m, 1)
    m.begin_task(1)
    (x0, y0), (x1, y1) = task_data(0, seed=9), task_data(1, seed=9)
    x, y = torch.cat([x0, x1]), torch.cat([y0, y1])
    with torch.no_grad():
        old = F.cross_entropy(m.prototype_logits(x0)[:, :PER_TASK], y0, reduction="sum")
        cur = F.cross_entropy(m.training_logits(x1), y1 - PER_TASK, reduction="sum")
    assert m.heldout_loss(x, y) == pytest.approx(float((old + cur) / len(y)), rel=1e-5)


def restored(method, name, n_tasks, **config):
    """A method rebuilt as the trainer resumes one: fresh backbone, begin_task(0..n-1), load state."""
    fresh = make_method(name, vit_seed=1, **config).train(method.training)
    for t in range(n_tasks):
        fresh.begin_task(t)
    fresh.load_state_dict(roundtrip(method.state_dict()))
    return fresh


def roundtrip(state):
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("use_init_ptm", [False, True])
def test_ease_checkpoint_round_trip(use_init_ptm):
    m = make_method("ease", use_init_ptm=use_init_ptm).eval()
    run_tasks(m, 2)
    fresh = restored(m, "ease", 2, use_init_ptm=use_init_ptm)
    x, _ = task_data(1, seed=4)
    with torch.no_grad():
        assert torch.equal(fresh.logits(x), m.logits(x))


def test_ease_new_task_modules_do_not_depend_on_global_rng():
    """A run resumed from a task checkpoint must create task t+1's adapters as the whole run did."""
    m = make_method("ease").eval()
    run_tasks(m, 2)
    fresh = restored(m, "ease", 2)
    torch.rand(7)  # the global RNG is elsewhere after a resume
    rng = torch.get_rng_state()
    fresh.begin_task(2)
    assert torch.equal(torch.get_rng_state(), rng)
    m.begin_task(2)
    for a, b in zip(m.vit.adapter_sets[2].parameters(), fresh.vit.adapter_sets[2].parameters()):
        assert torch.equal(a, b)
    assert torch.equal(m.heads[2].weight, fresh.heads[2].weight)
    assert not torch.equal(m.heads[2].weight, m.heads[1].weight)


# -- APER ----------------------------------------------------------------------------------------
def test_aper_trains_only_first_task():
    m = make_method("aper")
    assert [m.trains_on(t) for t in range(3)] == [True, False, False]
    m.begin_task(0)
    assert ids(m.trainable_parameters()) == ids([*m.vit.adapter_sets[0].parameters(), *m.head.parameters()])
    m.begin_task(1)
    assert m.trainable_parameters() == []


def test_aper_prototypes_in_concatenated_space_and_nearest_prediction():
    m = make_method("aper").eval()
    data = run_tasks(m, 2)
    assert m.prototypes.shape == (2 * PER_TASK, 2 * m.vit.embed_dim)
    with torch.no_grad():
        for x, y in data:
            f = torch.cat([m.vit.features(x, None), m.vit.features(x, 0)], dim=1)
            for c in y.unique().tolist():
                torch.testing.assert_close(m.prototypes[c], f[y == c].mean(0))
        x, _ = task_data(0, seed=7)
        f = torch.cat([m.vit.features(x, None), m.vit.features(x, 0)], dim=1)
        cos = F.cosine_similarity(f[:, None], m.prototypes[None], dim=2)
        logits = m.logits(x)
    torch.testing.assert_close(logits, m.prototype_scale * cos)
    assert torch.equal(logits.argmax(1), cos.argmax(1))


def test_aper_checkpoint_round_trip():
    m = make_method("aper").eval()
    run_tasks(m, 2)
    fresh = restored(m, "aper", 2)
    x, _ = task_data(1, seed=4)
    with torch.no_grad():
        assert torch.equal(fresh.logits(x), m.logits(x))


# -- SimpleCIL -----------------------------------------------------------------------------------
def test_simplecil_trains_nothing_and_scores_frozen_prototypes():
    m = make_method("simplecil").eval()
    assert not m.trains and not any(m.trains_on(t) for t in range(3)) and m.trainable_parameters() == []
    data = run_tasks(m, 2)
    assert len(m.vit.adapter_sets) == 0 and m.prototypes.shape == (2 * PER_TASK, m.vit.embed_dim)
    with torch.no_grad():
        for x, y in data:
            f = m.vit.features(x, None)
            for c in y.unique().tolist():
                torch.testing.assert_close(m.prototypes[c], f[y == c].mean(0))
        x, _ = task_data(1, seed=3)
        cos = F.cosine_similarity(m.vit.features(x, None)[:, None], m.prototypes[None], dim=2)
        torch.testing.assert_close(m.logits(x), m.prototype_scale * cos)
    fresh = restored(m, "simplecil", 2)
    with torch.no_grad():
        assert torch.equal(fresh.logits(x), m.logits(x))


def test_ease_with_untrained_adapters_scores_like_simplecil_on_its_own_task():
    """Fresh adapters add zero (up-projection at 0): EASE's first task is SimpleCIL's, so what EASE gains
    over the no-training row can come only from training."""
    ease, simple = make_method("ease").eval(), make_method("simplecil").eval()
    for m in (ease, simple):
        run_tasks(m, 1, train=lambda method, seed: None)
    x, _ = task_data(0, seed=5)
    with torch.no_grad():
        torch.testing.assert_close(ease.logits(x), simple.logits(x))


# -- Replay --------------------------------------------------------------------------------------
def stream(method, task, n_batches=12, size=4):
    for b in range(n_batches):
        x, y = task_data(task, per_class=size // PER_TASK, seed=100 + b)
        method.prepare_batch(x, y)


def test_replay_memory_capped_and_deterministic():
    a, b, c = (make_method("replay", memory_per_class=5, seed=s) for s in (3, 3, 4))
    for m in (a, b, c):
        m.begin_task(0)
        stream(m, 0)
    for label in range(PER_TASK):
        assert a.seen[label] == 24 and len(a.memory[label]) == 5
        assert all(torch.equal(p, q) for p, q in zip(a.memory[label], b.memory[label]))
    assert not all(torch.equal(p, q) for label in range(PER_TASK) for p, q in zip(a.memory[label], c.memory[label]))


def test_replay_loss_weights():
    m = make_method("replay", memory_per_class=4).eval()
    x, y = task_data(0)
    m.begin_task(0)
    batch = m.prepare_batch(x, y)
    assert "x_replay" not in batch
    torch.testing.assert_close(m.loss(batch), F.cross_entropy(m.training_logits(x), y))
    m.begin_task(1)
    stream(m, 1)
    m.begin_task(2)
    x, y = task_data(2)
    batch = m.prepare_batch(x, y)
    assert batch["x_replay"].shape == x.shape and bool((batch["y_replay"] < 2 * PER_TASK).all())
    with torch.no_grad():
        current = F.cross_entropy(m.training_logits(x), y)
        replayed = F.cross_entropy(m.training_logits(batch["x_replay"]), batch["y_replay"])
        assert abs(float(current - replayed)) > 1e-3  # the two weights are told apart
        torch.testing.assert_close(m.loss(batch), current / 3 + replayed * 2 / 3)


def test_replay_batch_fixed_within_a_zo_step_and_drawn_per_call():
    m = make_method("replay", memory_per_class=4)
    m.begin_task(0)
    stream(m, 0)
    m.begin_task(1)
    x, y = task_data(1)
    batch = m.prepare_batch(x, y)
    opt = create_optimizer("zo-sgd", m.trainable_parameters(), model=m)
    seen, rng = [], m.generator.get_state()

    def closure():
        seen.append((batch["x_replay"].clone(), batch["y_replay"].clone()))
        return m.loss(batch)

    opt.step(closure)
    assert len(seen) == 2
    assert torch.equal(seen[0][0], seen[1][0]) and torch.equal(seen[0][1], seen[1][1])
    assert torch.equal(m.generator.get_state(), rng)  # the closure draws nothing
    again = m.prepare_batch(x, y)
    assert not torch.equal(again["x_replay"], batch["x_replay"])


def test_replay_checkpoint_keeps_memory_and_generator():
    m = make_method("replay", memory_per_class=3)
    m.begin_task(0)
    stream(m, 0)
    m.begin_task(1)
    fresh = restored(m, "replay", 2, memory_per_class=3, seed=9)
    x, y = task_data(1)
    a, b = m.prepare_batch(x, y), fresh.prepare_batch(x, y)
    assert torch.equal(a["x_replay"], b["x_replay"]) and torch.equal(a["y_replay"], b["y_replay"])


# -- LwF -----------------------------------------------------------------------------------------
def lwf_at_task_1(**config):
    m = make_method("lwf", **config)
    m.begin_task(0)
    perturb_trainables(m)
    m.begin_task(1)
    return m


def test_lwf_teacher_logits_once_per_step_and_unaffected_by_training(monkeypatch):
    m = lwf_at_task_1()
    x, y = task_data(1)
    calls = []
    features = m.vit.features
    monkeypatch.setattr(m.vit, "features", lambda x, s=-1: calls.append(s) or features(x, s))
    batch = m.prepare_batch(x, y)
    assert calls == [m.teacher_set] and batch["teacher_logits"].shape == (len(x), PER_TASK)
    calls.clear()
    opt = create_optimizer("zo-sgd", m.trainable_parameters(), model=m)
    opt.step(lambda: m.loss(batch))
    assert calls == [0, 0]  # two student forwards, no teacher forward
    opt = create_optimizer("fo-sgd", m.trainable_parameters(), model=m, lr=0.5)
    student_before = m.eval().training_logits(x).detach()
    for _ in range(3):
        opt.step(lambda: m.loss(batch))
    assert not torch.allclose(m.training_logits(x), student_before)
    torch.testing.assert_close(m.prepare_batch(x, y)["teacher_logits"], batch["teacher_logits"])


def test_lwf_alpha_zero_is_cross_entropy():
    m = lwf_at_task_1(alpha=0.0).eval()
    x, y = task_data(1)
    with torch.no_grad():
        torch.testing.assert_close(m.loss(m.prepare_batch(x, y)), F.cross_entropy(m.training_logits(x), y))


def test_lwf_distillation_zero_when_student_is_teacher():
    m = lwf_at_task_1(temperature=3.0).eval()
    x, y = task_data(1)
    batch = m.prepare_batch(x, y)
    with torch.no_grad():
        kd = m.distillation(m.training_logits(x), batch["teacher_logits"])
        assert abs(float(kd)) < 1e-6
        torch.testing.assert_close(m.loss(batch), F.cross_entropy(m.training_logits(x), y))
        perturb_trainables(m, seed=5)
        assert float(m.distillation(m.training_logits(x), batch["teacher_logits"])) > 1e-4


def test_lwf_checkpoint_round_trip():
    m = lwf_at_task_1().eval()
    perturb_trainables(m, seed=2)
    fresh = restored(m, "lwf", 2)
    fresh.begin_task(1)  # a repeated begin_task keeps the teacher
    fresh.eval()
    x, y = task_data(1)
    with torch.no_grad():
        torch.testing.assert_close(fresh.prepare_batch(x, y)["teacher_logits"], m.prepare_batch(x, y)["teacher_logits"])
        assert torch.equal(fresh.logits(x), m.logits(x))


# -- every method, every kind of optimizer ---------------------------------------------------------
def at_training_task(name):
    m = make_method(name)
    if name == "aper":
        m.begin_task(0)
        return m, task_data(0)
    m.begin_task(0)
    x, y = task_data(0)
    perturb_trainables(m)
    if name == "replay":
        m.prepare_batch(x, y)
    m.end_task(0, features_fn(m, x, y))
    m.begin_task(1)
    return m, task_data(1)


@pytest.mark.parametrize("optimizer", ["fo-sgd", "zo-sgd", "forward-grad"])
@pytest.mark.parametrize("name", ["ease", "aper", "replay", "lwf"])
def test_one_step_changes_only_trainable_parameters(name, optimizer):
    m, (x, y) = at_training_task(name)
    trainable = ids(m.trainable_parameters())
    assert trainable
    before = {k: v.clone() for k, v in m.named_parameters()}
    params = dict(m.named_parameters())
    batch = m.prepare_batch(x, y)
    if name == "replay":
        assert "x_replay" in batch
    if name == "lwf":
        assert "teacher_logits" in batch
    opt = create_optimizer(optimizer, m.trainable_parameters(), model=m)
    loss = opt.step(lambda: m.loss(batch))
    assert math.isfinite(float(loss))
    changed = {k for k, v in before.items() if not torch.equal(v, params[k])}
    assert changed and all(id(params[k]) in trainable for k in changed)


def test_lwf_distillation_by_hand():
    m = lwf_at_task_1(temperature=2.0)
    g = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(5, 4, generator=g), torch.randn(5, PER_TASK, generator=g)
    p_t = torch.softmax(teacher / 2, dim=1)
    log_p_s = torch.log_softmax(student[:, :PER_TASK] / 2, dim=1)
    expected = 4 * (p_t * (p_t.log() - log_p_s)).sum(1).mean()
    torch.testing.assert_close(m.distillation(student, teacher), expected)


@pytest.mark.parametrize("optimizer,scope,moved", [
    ("zo-sgd", "official", True), ("forward-grad", "official", True), ("fo-sgd", "official", False),
    ("zo-sgd", "trainable", False),
])
def test_zo_scope_official_perturbs_the_stored_prototypes(optimizer, scope, moved):
    """zo_scope official: a forward-pass step moves EASE's stored prototypes (noise and weight decay, as INFTY's
    ZeroFlow does to PILOT's prototype classifier); backprop leaves them alone; trainable never touches them."""
    m, (x, y) = at_training_task("ease")
    stored, sigma = m.prototypes.clone(), m.sigma.clone()
    batch = m.prepare_batch(x, y)
    with m.stored_classifier_trainable(scope == "official"):
        opt = create_optimizer(optimizer, m.trainable_parameters(), model=m, lr=0.1)
        opt.step(lambda: m.loss(batch))
    assert not torch.equal(m.prototypes, stored) if moved else torch.equal(m.prototypes, stored)
    # and the evaluation classifier's σ (EaseNet's fc.sigma), which INFTY's ZeroFlow perturbs as well
    assert not torch.equal(m.sigma, sigma) if moved else torch.equal(m.sigma, torch.ones(1))
    # outside the block they are plain tensors again, so checkpoints keep their layout
    assert not any(name.startswith("stored_classifier") for name in m.state_dict())


def test_ease_evaluation_sigma_scales_the_scores_and_travels_in_the_checkpoint():
    """EASE's evaluation classifier has PILOT's σ (EaseCosineLinear.sigma): 1 from the first task, a factor of every
    score, so a σ below 0 reverses the predictions; it is part of the method's checkpointed state."""
    m, (x, _) = at_training_task("ease")
    assert torch.equal(m.sigma, torch.ones(1))
    m.eval()
    with torch.no_grad():
        scores = m.prototype_logits(x)
        m.sigma.fill_(-0.5)
        torch.testing.assert_close(m.prototype_logits(x), -0.5 * scores)
        assert torch.equal(m.prototype_logits(x).argmax(1), scores.argmin(1))
    copy = make_method("ease")
    for task in range(2):
        copy.begin_task(task)
    copy.load_state_dict(m.state_dict(), strict=False)
    assert torch.equal(copy.sigma, torch.tensor([-0.5]))


@pytest.mark.parametrize("name", ["ease", "aper"])
def test_training_heads_start_at_pilots_sigma_of_one(name):
    m = make_method(name)
    m.begin_task(0)
    head = m.heads[0] if name == "ease" else m.head
    assert float(head.scale) == 1.0 and head.scale.requires_grad
    m = make_method(name, head_scale=16.0)
    m.begin_task(0)
    assert float((m.heads[0] if name == "ease" else m.head).scale) == 16.0


# ------------------------------------------------------------------------------------------ settings
def test_every_method_declares_its_label_and_its_settings_with_a_default_a_type_and_help():
    from zeroflow_core.methods import METHODS

    labels = [method.label for method in METHODS.values()]
    assert len(set(labels)) == len(labels) and "base" not in labels
    for name, method in METHODS.items():
        assert method.defaults == {key: setting.default for key, setting in method.settings.items()}, name
        for setting in method.settings.values():
            assert setting.help and setting.problem(setting.default) is None, (name, setting.name)


def test_the_help_of_train_lists_every_method_setting():
    from zeroflow_core import cli
    from zeroflow_core.methods import METHODS

    text = " ".join(cli._train_epilog().split())
    for method in METHODS.values():
        for setting in method.settings.values():
            assert " ".join(setting.describe().split()) in text, (method.name, setting.name)


@pytest.mark.parametrize("config,message", [
    ({"memory_per_class": 0}, "'memory_per_class' must be >= 1, got 0"),
    ({"memory_per_class": "20"}, "'memory_per_class' must be int like its default 20"),
    ({"memory_size": 20}, "unknown setting 'memory_size'"),
])
def test_a_wrong_setting_is_refused_by_the_one_check_wherever_it_is_given(config, message):
    """The constructor, a run's configuration and params.yaml all ask the method's check_settings."""
    from zeroflow_core.io import load_yaml
    from zeroflow_core.pipeline.params import check_params
    from zeroflow_core.run.config import resolve_config
    from pathlib import Path
    from zeroflow_core.settings import ConfigError

    with pytest.raises(ValueError, match=message):
        make_method("replay", **config)
    with pytest.raises(ConfigError, match=message.replace("'memory", "'method_config.memory")):
        resolve_config({"method": "replay", "optimizer": "zo-sgd", "dataset": "hues", "method_config": config})
    params = load_yaml((Path(__file__).parents[1] / "params.yaml").read_text())
    params["methods"]["replay"] = config
    with pytest.raises(ConfigError, match=message.replace("'memory", "'methods.replay.memory")):
        check_params(params)
