"""RNN successive-refinement Wyner–Ziv coder (Joukovsky et al., Fig. 1), for a scalar source.

Stage k = 1..K: encoder p(m_k | m_<k, x) = softmax(f(h_k)) with h_k the top state of a stacked RNN reading x
at every step (f shared across stages); decoder x̂_k = g(ĥ_k) with ĥ_k the state of an RNN reading
(y, one-hot m_k); priors q_m(m_k | m_<k) (RNN over m_{k-1}) and q_c(m_k | m_<k, y) (RNN over (y, m_{k-1})),
softmax(p_k(·)) with one linear map p_k per stage. K = 1 is the monolithic coder of Özyilkan et al.

"2 hidden layers with 100 hidden units each and with LeakyReLU activations": a gated cell has fixed
activations, so the default cell is an Elman RNN h' = LeakyReLU(W [input, h] + b); cell="gru" is an option."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

LN2 = math.log(2.0)


@dataclass(frozen=True)
class ModelConfig:
    alphabets: tuple[int, ...]  # M per stage (equal: the encoder's linear layer is shared)
    hidden: int = 100
    layers: int = 2
    cell: str = "elman"  # "elman" (LeakyReLU, the paper) or "gru"
    slope: float = 0.01  # LeakyReLU negative slope
    in_scale: float = 1.0  # x and y enter the RNNs multiplied by this (1/σ puts the noise scale at 1)
    residual: bool = False  # decoder outputs y + g(h)/in_scale instead of g(h)

    @property
    def K(self) -> int:
        return len(self.alphabets)

    @property
    def M(self) -> int:
        return self.alphabets[0]

    def as_dict(self) -> dict:
        d = asdict(self)
        d["alphabets"] = list(self.alphabets)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        return cls(alphabets=tuple(int(a) for a in d["alphabets"]), hidden=int(d["hidden"]), layers=int(d["layers"]),
                   cell=str(d["cell"]), slope=float(d["slope"]), in_scale=float(d.get("in_scale", 1.0)),
                   residual=bool(d.get("residual", False)))


class StackedRNN(nn.Module):
    """L-layer RNN stepped by hand (K is 1..4 steps); returns the top layer's state at each step."""

    def __init__(self, n_in: int, hidden: int, layers: int, cell: str, slope: float):
        super().__init__()
        self.hidden, self.layers, self.cell, self.slope = hidden, layers, cell, slope
        dims = [n_in] + [hidden] * (layers - 1)
        if cell == "elman":
            self.cells = nn.ModuleList(nn.Linear(d + hidden, hidden) for d in dims)
        elif cell == "gru":
            self.cells = nn.ModuleList(nn.GRUCell(d, hidden) for d in dims)
        else:
            raise ValueError(f"unknown cell {cell!r}; use 'elman' or 'gru'")

    def init_state(self, batch: int, ref: torch.Tensor) -> list[torch.Tensor]:
        return [ref.new_zeros(batch, self.hidden) for _ in range(self.layers)]

    def step(self, inp: torch.Tensor, state: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        new = []
        h_in = inp
        for cell, h in zip(self.cells, state):
            if self.cell == "elman":
                h = F.leaky_relu(cell(torch.cat([h_in, h], dim=-1)), self.slope)
            else:
                h = cell(h_in, h)
            new.append(h)
            h_in = h
        return h_in, new


class LayeredWZ(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if len(set(cfg.alphabets)) != 1:
            raise ValueError("all stages must share one alphabet size (the encoder's output layer is shared)")
        self.cfg = cfg
        H, L, M, K = cfg.hidden, cfg.layers, cfg.M, cfg.K
        mk = dict(hidden=H, layers=L, cell=cfg.cell, slope=cfg.slope)
        self.enc = StackedRNN(1, **mk)
        self.enc_out = nn.Linear(H, M)  # f, shared across stages
        self.dec = StackedRNN(1 + M, **mk)
        self.dec_out = nn.Linear(H, 1)  # g
        self.qm = StackedRNN(M, **mk)
        self.qm_out = nn.ModuleList(nn.Linear(H, M) for _ in range(K))  # p_k
        self.qc = StackedRNN(1 + M, **mk)
        self.qc_out = nn.ModuleList(nn.Linear(H, M) for _ in range(K))
        # integer frequency table of q_m for every history m_<k (filled by `freeze_entropy_tables`), so the
        # real entropy coder's model is bit-exact wherever the weights are loaded
        self.register_buffer("qm_freq", torch.zeros(0, M, dtype=torch.int32))

    # ---- pieces ------------------------------------------------------------------------------------------
    def encoder_logits(self, x: torch.Tensor, K: int | None = None) -> list[torch.Tensor]:
        """[logits of p(m_k | m_<k, x)] for k = 1..K; x: (B,)."""
        K = K or self.cfg.K
        inp = x.unsqueeze(-1) * self.cfg.in_scale
        st = self.enc.init_state(x.shape[0], inp)
        out = []
        for _ in range(K):
            h, st = self.enc.step(inp, st)
            out.append(self.enc_out(h))
        return out

    def decode(self, y: torch.Tensor, codes: list[torch.Tensor]) -> list[torch.Tensor]:
        """[x̂_k] from one-hot (or relaxed) codes m_1..m_k and side information y."""
        yi = y.unsqueeze(-1) * self.cfg.in_scale
        st = self.dec.init_state(y.shape[0], yi)
        out = []
        for m in codes:
            h, st = self.dec.step(torch.cat([yi, m], dim=-1), st)
            g = self.dec_out(h).squeeze(-1)
            out.append(y + g / self.cfg.in_scale if self.cfg.residual else g)
        return out

    def prior_logits(self, codes: list[torch.Tensor], y: torch.Tensor | None, kind: str, B: int, K: int) -> list[torch.Tensor]:
        """[log q(m_k | m_<k[, y])] for k = 1..K (log-softmax, natural log); codes[k] is m_{k+1} (K-1 used)."""
        rnn, heads = (self.qm, self.qm_out) if kind == "marginal" else (self.qc, self.qc_out)
        ref = codes[0] if codes else (y if y is not None else self.qm_out[0].weight)
        M = self.cfg.M
        st = rnn.init_state(B, ref)
        prev = ref.new_zeros(B, M)
        out = []
        for k in range(K):
            inp = prev if kind == "marginal" else torch.cat([y.unsqueeze(-1) * self.cfg.in_scale, prev], dim=-1)
            h, st = rnn.step(inp, st)
            out.append(F.log_softmax(heads[k](h), dim=-1))
            if k < len(codes):
                prev = codes[k]
        return out

    # ---- training ----------------------------------------------------------------------------------------
    def loss(self, x: torch.Tensor, y: torch.Tensor, *, prior: str, lam: float, tau: float, hard: bool = False,
             other: bool = False) -> tuple[torch.Tensor, dict]:
        """Σ_k [KL(p_k || q_k) in bits + λ·MSE_k] with Gumbel-softmax codes at temperature tau.

        The rate term is the exact expectation over m_k of log p/q given the sampled history (Eq. 10/11);
        codes enter the priors through a stop-gradient. With other=True the prior not selected (e.g. q_m of a
        conditional model) is also trained on the same detached codes by its own cross-entropy, without touching
        the encoder (a quarter more compute per step); by default the real entropy coder's q_m of a conditional
        model is instead counted from the trained encoder's codes (`count_entropy_tables`)."""
        K, B = self.cfg.K, x.shape[0]
        logits = self.encoder_logits(x)
        logp = [F.log_softmax(l, dim=-1) for l in logits]
        codes = [F.gumbel_softmax(l, tau=tau, hard=hard, dim=-1) for l in logits]
        xh = self.decode(y, codes)
        hist = [c.detach() for c in codes[:-1]]
        q_main = self.prior_logits(hist, y, prior, B, K)
        kind_other = "marginal" if prior == "conditional" else "conditional"
        q_other = self.prior_logits(hist, y, kind_other, B, K) if other else None
        total = x.new_zeros(())
        rates, mses, aux = [], [], []
        for k in range(K):
            p = logp[k].exp()
            rate = (p * (logp[k] - q_main[k])).sum(-1).mean() / LN2
            mse = F.mse_loss(xh[k], x)
            ce_other = -(p.detach() * q_other[k]).sum(-1).mean() / LN2 if other else x.new_zeros(())
            total = total + rate + lam * mse + ce_other
            rates.append(float(rate.detach()))
            mses.append(float(mse.detach()))
            aux.append(float(ce_other.detach()))
        return total, {"rate": rates, "mse": mses, "ce_other": aux}

    def loss_exact(self, x: torch.Tensor, y: torch.Tensor, *, prior: str, lam: float) -> tuple[torch.Tensor, dict]:
        """The same objective with the expectation over codes taken exactly instead of by Gumbel sampling: every
        code prefix m_1..m_k is decoded and weighted by P(m_1..m_k | x) = Π_j p(m_j | x) (M^K ≤ 16 here).

        Walked as a tree, stage by stage: the decoder's state of a prefix is expanded into its M children, so
        stage k decodes M^k prefixes per sample and the priors read the M^(k−1) histories (not every full path at
        every stage). Stage k's rate is Σ_history P(history) KL(p_k ‖ q_k(·|history[, y])), its MSE
        Σ_prefix P(prefix) (x̂_k − x)²; the prior not selected is trained beside by its own cross-entropy."""
        K, M, B = self.cfg.K, self.cfg.M, x.shape[0]
        logp = [F.log_softmax(l, dim=-1) for l in self.encoder_logits(x)]  # K × (B, M)
        other = "marginal" if prior == "conditional" else "conditional"
        yi = y.unsqueeze(-1) * self.cfg.in_scale
        eye = torch.eye(M, dtype=x.dtype, device=x.device)
        dec_st = self.dec.init_state(B, yi)
        pri_st = {kind: self._prior_rnn(kind)[0].init_state(B, yi) for kind in (prior, other)}
        lp_hist = x.new_zeros(B, 1)  # log P(history) of the M^k histories of stage k, child = parent·M + m
        last = x.new_zeros(B, M)  # one-hot of the last symbol of each history (zeros before stage 1)
        total = x.new_zeros(())
        rates, mses, aux = [], [], []
        for k in range(K):
            n = lp_hist.shape[1]  # histories per sample
            y_h = yi.repeat_interleave(n, dim=0)
            q = {}
            for kind in (prior, other):
                rnn, heads = self._prior_rnn(kind)
                h, pri_st[kind] = rnn.step(last if kind == "marginal" else torch.cat([y_h, last], -1), pri_st[kind])
                q[kind] = F.log_softmax(heads[k](h), dim=-1).view(B, n, M)
            p = logp[k].exp().unsqueeze(1)  # (B, 1, M): the encoder does not read the history
            w_hist = lp_hist.exp()
            kl = (p * (logp[k].unsqueeze(1) - q[prior])).sum(-1)  # (B, n)
            ce = -(p.detach() * q[other]).sum(-1)
            # children: every history × every symbol of stage k
            lp_hist = (lp_hist.unsqueeze(-1) + logp[k].unsqueeze(1)).reshape(B, n * M)
            last = eye.repeat(B * n, 1)  # (B·n·M, M)
            dec_st = [s_.repeat_interleave(M, dim=0) for s_ in dec_st]
            pri_st = {kind: [s_.repeat_interleave(M, dim=0) for s_ in st] for kind, st in pri_st.items()}
            h, dec_st = self.dec.step(torch.cat([yi.repeat_interleave(n * M, dim=0), last], -1), dec_st)
            g = self.dec_out(h).squeeze(-1)
            y_c = y.repeat_interleave(n * M)
            xh = (y_c + g / self.cfg.in_scale if self.cfg.residual else g).view(B, n * M)
            rate = (w_hist * kl).sum(1).mean() / LN2
            mse = (lp_hist.exp() * (xh - x.unsqueeze(1)) ** 2).sum(1).mean()
            ce_other = (w_hist.detach() * ce).sum(1).mean() / LN2
            total = total + rate + lam * mse + ce_other
            rates.append(float(rate.detach()))
            mses.append(float(mse.detach()))
            aux.append(float(ce_other.detach()))
        return total, {"rate": rates, "mse": mses, "ce_other": aux}

    def _prior_rnn(self, kind: str) -> tuple[StackedRNN, nn.ModuleList]:
        return (self.qm, self.qm_out) if kind == "marginal" else (self.qc, self.qc_out)

    # ---- inference ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, x: torch.Tensor, K: int | None = None) -> torch.Tensor:
        """Hard codes (B, K) = argmax of the encoder."""
        return torch.stack([l.argmax(-1) for l in self.encoder_logits(x, K)], dim=-1)

    def one_hot(self, idx: torch.Tensor) -> list[torch.Tensor]:
        return [F.one_hot(idx[:, k], self.cfg.M).to(torch.float32) for k in range(idx.shape[1])]

    @torch.no_grad()
    def reconstruct(self, codes: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
        return self.decode(y, self.one_hot(codes))

    @torch.no_grad()
    def code_lengths(self, codes: torch.Tensor, y: torch.Tensor | None, kind: str) -> torch.Tensor:
        """−log2 q(m_k | m_<k[, y]) per sample and stage, (B, k)."""
        B, K = codes.shape
        oh = self.one_hot(codes)
        lq = self.prior_logits(oh[:-1], y, kind, B, K)
        return torch.stack([-lq[k].gather(-1, codes[:, k : k + 1]).squeeze(-1) / LN2 for k in range(K)], dim=-1)

    # ---- entropy-coder tables ----------------------------------------------------------------------------
    @staticmethod
    def history_index(codes: torch.Tensor, k: int, M: int) -> torch.Tensor:
        """Row of the frequency table for stage k (0-based) given codes[:, :k]: offset(k) + base-M number."""
        off = sum(M**i for i in range(k))
        idx = torch.zeros(codes.shape[0], dtype=torch.long)
        for i in range(k):
            idx = idx * M + codes[:, i].long()
        return idx + off

    @torch.no_grad()
    def freeze_entropy_tables(self, precision: int = 16) -> None:
        """Tabulate q_m(m_k | m_<k) for every history as integer frequencies summing to 2**precision (each ≥ 1)."""
        M, K = self.cfg.M, self.cfg.K
        rows = []
        for k in range(K):
            hist = torch.cartesian_prod(*[torch.arange(M)] * k).reshape(-1, k) if k > 0 else torch.zeros(1, 0, dtype=torch.long)
            n = hist.shape[0]
            lq = self.prior_logits(self.one_hot(hist), None, "marginal", n, k + 1)[k].double()
            rows.append(_to_freq(lq.exp(), precision))
        self.qm_freq = torch.cat(rows).to(torch.int32)

    @torch.no_grad()
    def count_entropy_tables(self, codes: torch.Tensor, precision: int = 16) -> None:
        """q_m(m_k | m_<k) for every history as the empirical frequencies of hard codes (n, K) (+1 per symbol):
        the marginal entropy coder's best table for this encoder, without training an RNN prior."""
        M, K = self.cfg.M, self.cfg.K
        rows = []
        for k in range(K):
            idx = self.history_index(codes, k, M) - sum(M**i for i in range(k))
            cnt = torch.zeros(M**k, M, dtype=torch.float64)
            cnt.index_put_((idx, codes[:, k].long()), torch.ones(codes.shape[0], dtype=torch.float64), accumulate=True)
            rows.append(_to_freq((cnt + 1.0) / (cnt + 1.0).sum(-1, keepdim=True), precision))
        self.qm_freq = torch.cat(rows).to(torch.int32)

    def entropy_probs(self) -> torch.Tensor:
        """float64 probabilities of the frozen table (rows sum to 1 exactly in binary)."""
        if self.qm_freq.numel() == 0:
            raise RuntimeError("entropy tables not frozen; call freeze_entropy_tables() after training")
        f = self.qm_freq.double()
        return f / f.sum(-1, keepdim=True)


def _to_freq(p: torch.Tensor, precision: int) -> torch.Tensor:
    total = 1 << precision
    M = p.shape[-1]
    f = torch.floor(p * (total - M)).long() + 1
    # hand the rounding remainder to the most probable symbol (deterministic)
    rem = total - f.sum(-1)
    top = p.argmax(-1)
    f[torch.arange(f.shape[0]), top] += rem
    return f
