import jax
import jax.numpy as jnp
import numpy as np
import pytest

from forecaster.model import Forecaster, ModelConfig, combine, forward, init_params
from forecaster.recurrent import default_unroll


def test_config_round_trips_through_dict_and_sorts_quantiles() -> None:
    cfg = ModelConfig(cell="lstm", quantiles=(0.9, 0.1), ensemble=3)
    assert cfg.quantiles == (0.1, 0.9)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.outputs == 3


def test_the_classical_shares_are_in_the_dict_only_when_there_are_some() -> None:
    plain = ModelConfig()
    assert not {"theta_weight", "damped_weight", "theta_season"} & set(plain.to_dict())
    assert not plain.blended
    blended = ModelConfig(theta_weight=0.3, damped_weight=0.2, theta_season=12)
    assert blended.blended
    fields = blended.to_dict()
    shares = fields["theta_weight"], fields["damped_weight"], fields["theta_season"]
    assert shares == (0.3, 0.2, 12)
    assert ModelConfig.from_dict(fields) == blended
    theta_only = ModelConfig(theta_weight=0.3, theta_season=12)  # as saved before damped trend
    assert "damped_weight" not in theta_only.to_dict()
    assert ModelConfig.from_dict(theta_only.to_dict()) == theta_only


def test_the_pull_toward_naive2_is_in_the_dict_and_the_method_only_when_set() -> None:
    assert "naive_shrink" not in ModelConfig().to_dict()
    pulled = ModelConfig(naive_shrink=4.0)
    fields = pulled.to_dict()
    assert (fields["naive_shrink"], fields["theta_season"]) == (4.0, 1)
    assert ModelConfig.from_dict(fields) == pulled
    assert pulled.shrinks and not pulled.blended and pulled.stated_share is None
    assert pulled.network == ModelConfig()
    methods = [
        ModelConfig(theta_weight=w / 2, damped_weight=w / 2, naive_shrink=k).method
        for w, k in ((0, 0), (0, 4), (0.4, 4), (1, 4), (1, 0))
    ]
    assert methods == ["model", "model+naive", "model+classical+naive", "classical+naive",
                       "classical"]  # fmt: skip


@pytest.mark.parametrize(
    "bad",
    [{"cell": "transformer"}, {"hidden": 0}, {"input_size": 100, "step": 24}, {"dropout": 1.0},
     {"quantiles": (0.0,)}, {"ensemble": 0}, {"theta_weight": 1.5}, {"theta_weight": -0.1},
     {"theta_season": 0}, {"damped_weight": 1.5}, {"theta_weight": 0.6, "damped_weight": 0.6},
     {"naive_shrink": -1.0}, {"naive_shrink": float("nan")}, {"naive_shrink": float("inf")}],
)  # fmt: skip
def test_config_refuses_invalid_values(bad: dict) -> None:
    with pytest.raises(ValueError):
        ModelConfig(**bad)


def test_from_dict_refuses_unknown_keys() -> None:
    with pytest.raises(ValueError, match="unknown"):
        ModelConfig.from_dict({"cell": "gru", "heads": 4})


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_members_are_independent_and_shapes_follow_the_config(cell: str) -> None:
    cfg = ModelConfig(cell=cell, hidden=8, input_size=48, step=24, horizon=5, ensemble=3,
                      quantiles=(0.1, 0.9))  # fmt: skip
    params = init_params(cfg)
    kernel = params["members"]["encoder"]["layer_0"]["kernel_rec"]
    assert kernel.shape[0] == 3
    assert not np.allclose(kernel[0], kernel[1])  # each member gets its own initialisation
    z = jax.random.normal(jax.random.key(1), (3, 4, 48))
    out = Forecaster(cfg).apply({"params": params}, z)
    assert out.shape == (3, 4, 5, 3)
    # Member 0's output depends on member 0's input only.
    z2 = z.at[1:].set(0.0)
    np.testing.assert_allclose(Forecaster(cfg).apply({"params": params}, z2)[0], out[0], rtol=1e-6)


def test_forward_is_the_member_median() -> None:
    cfg = ModelConfig(hidden=8, input_size=48, horizon=4, ensemble=3)
    params = init_params(cfg)
    z = jnp.linspace(-1, 1, 2 * 48).reshape(2, 48)
    members = Forecaster(cfg).apply({"params": params}, jnp.broadcast_to(z, (3, 2, 48)))
    np.testing.assert_allclose(forward(cfg, params, z), np.median(members, axis=0), rtol=1e-6)
    assert combine(jnp.arange(3.0)[:, None]).tolist() == [1.0]


@pytest.mark.parametrize("lengths", [None, [40, 17]])
def test_training_compilation_gives_the_same_forecasts_and_gradients(lengths: list | None) -> None:
    """``training`` only changes how the encoder compiles: 20 steps are one rolled loop for
    inference and unrolled whole when differentiated."""
    cfg = ModelConfig(hidden=8, input_size=40, step=2, horizon=4, ensemble=2)
    assert default_unroll(20) == 1 and default_unroll(20, training=True) == 20
    params = init_params(cfg)
    z = jax.random.normal(jax.random.key(1), (2, 2, 40))
    valid = None if lengths is None else jnp.broadcast_to(jnp.asarray(lengths), (2, 2))

    def run(training: bool) -> tuple:
        def loss(p: dict) -> jax.Array:
            out = Forecaster(cfg, training=training).apply({"params": p}, z, valid)
            return jnp.sum(jnp.sin(out)), out

        return jax.value_and_grad(loss, has_aux=True)(params)

    (_, out), grads = run(False)
    (_, out_t), grads_t = run(True)
    np.testing.assert_allclose(out_t, out, rtol=1e-5, atol=1e-6)
    for g_t, g in zip(jax.tree.leaves(grads_t), jax.tree.leaves(grads), strict=True):
        np.testing.assert_allclose(g_t, g, rtol=1e-4, atol=1e-6)
