"""Federated meta-training on Flower (``flwr``, see ``pyproject.toml`` for the pinned version).

Reptile's and first-order MAML's outer step is federated averaging of per-client adaptation
deltas: each client (:mod:`.client_app`) holds some users, runs metarec's inner loop on the
engine from the shared policy and replies with the policy moved by its mean delta (θ + Δ̄ₖ,
the form Flower's clipping mods and strategies expect) weighted by its number of users; the
server (:mod:`.server_app`, :class:`.strategy.MetaStrategy`) averages, takes metarec's outer
step (Reptile step size, or Adam for first-order MAML) and evaluates the policy on held-out
users. With ``clipping-norm`` > 0 the clients clip their update with Flower's
``fixedclipping_mod`` and the server adds Gaussian noise through Flower's
``DifferentialPrivacyClientSideFixedClipping`` with its RDP accountant, which reports ε.
With ``secure-aggregation`` the updates are aggregated with SecAgg+ (:mod:`.secure`).
"""
