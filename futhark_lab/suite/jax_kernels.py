"""Suite kernels that need ``jax.jit`` options of their own (imported only when the JAX peer runs them)."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp


@partial(jax.jit, static_argnums=(0, 1))      # n and limit fix the shapes and the loop: static
def mandelbrot(n, limit):
    f = jnp.float32
    j = jnp.arange(n, dtype=f)
    cx = jnp.broadcast_to(f(-2) + f(3) * j / f(n), (n, n))
    cy = jnp.broadcast_to((f(-1.5) + f(3) * j / f(n))[:, None], (n, n))

    def step(_, state):
        x, y, k = state
        live = x * x + y * y <= 4
        return (jnp.where(live, x * x - y * y + cx, x), jnp.where(live, f(2) * x * y + cy, y),
                k + live.astype(jnp.int32))

    zeros = jnp.zeros((n, n), f)
    return jax.lax.fori_loop(0, limit, step, (zeros, zeros, jnp.zeros((n, n), jnp.int32)))[2]
