//! Taylor-interaction allocation (Deng et al. 2023, "Understanding and Unifying Fourteen
//! Attribution Methods with Taylor Interactions"; PAPERS.md §3).
//!
//! For `n ≤ 16` players (feature groups: superpixels, tokens, columns), the masked outputs
//! `v(T)` of all `2^n` coalitions come from one chunked sweep (players in `T` keep the input,
//! the others take the baseline). Their Möbius transform gives the Harsanyi dividends
//! `I(S) = Σ_{T⊆S} (−1)^{|S|−|T|} v(T)`: `I({i})` is player i's independent effect and
//! `I(S)`, `|S| ≥ 2`, the interaction of S, with `Σ_{S≠∅} I(S) = v(N) − v(∅)`.
//!
//! A fair allocation (Deng's three principles) gives (1) the total effect `v(N) − v(∅)` and
//! no more, (2) every independent effect to its own player only, and (3) every interaction to
//! the members of S only, all of it. Two ways to measure a method against them:
//!
//! - [`Interactions::allocation_errors`], from an attribution vector alone: the
//!   approximation error (principle 1) and the *unfairness*, the distance of the vector from
//!   the set of allocations that obey principles 2 and 3 with non-negative shares (each
//!   `I(S)` split among the members of S). That set is the Minkowski sum of the simplices
//!   `I(S)·Δ_S`, a generalised permutohedron, so membership is the `2^n` inequalities
//!   `l(T) ≤ a(T) ≤ u(T)` with `u(T) = Σ_{S∩T≠∅} I⁺(S) + Σ_{S⊆T} I⁻(S)` and `l(T)` its
//!   mirror; every bound comes from a subset-sum transform, `O(n 2^n)` per example.
//! - [`HarsanyiInteractions::principle_errors`]: the method's own allocation weights
//!   `w_{j,S}` (Deng's coefficients) read off by running it on unanimity probes
//!   `f_S(x) = Π_{i∈S} Σ_{k∈G_i} (x_k − x̄_k)`, whose only dividend is `I(S) = f_S(x)`; the
//!   model's dividends weight the per-effect errors. Probes have no rule-bearing layers, so
//!   methods that differ from Gradient × Input only by layer rules (LRP, DeepLIFT) read as
//!   Gradient × Input there.
//!
//! Shapley values, `φ_i = Σ_{S∋i} I(S)/|S|`, obey all three principles exactly.

use crate::perturb::prepare;
use crate::{invalid, Result};
use candle_core::{DType, Tensor};
use candle_explain_core::methods::FeatureGroups;
use candle_explain_core::{Attributor, Baseline, Batching, Explainable, RuleCtx, Target};

/// Most players: `2^16` coalitions per example.
pub const MAX_PLAYERS: usize = 16;

/// Exact Harsanyi dividends of feature groups from one batched sweep over all coalitions.
#[derive(Debug, Clone)]
pub struct HarsanyiInteractions {
    /// Group id `0..n` per feature, broadcastable to the input (as for `ShapleyValues`).
    pub feature_mask: Tensor,
    pub baseline: Baseline,
    pub batching: Batching,
}

/// Coalition values and dividends per example, indexed by coalition bitmask.
#[derive(Debug, Clone)]
pub struct Interactions {
    pub players: usize,
    /// `[example][T]`: `v(T)`.
    pub values: Vec<Vec<f64>>,
    /// `[example][S]`: `I(S)` (`I(∅) = v(∅)`).
    pub dividends: Vec<Vec<f64>>,
}

/// A method's errors against the three principles, relative to `Σ_{S≠∅} |I(S)|`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AllocationErrors {
    /// `|Σ_i a_i − (v(N) − v(∅))|`.
    pub approximation: f64,
    /// Largest violation of the fair-allocation inequalities over all coalitions; 0 when the
    /// attributions can be written as independent effects to their players plus every
    /// interaction split (non-negatively) among its members.
    pub unfairness: f64,
}

/// A method's allocation weights measured on unanimity probes, as errors.
#[derive(Debug, Clone, PartialEq)]
pub struct PrincipleErrors {
    /// Principle 1 on the model itself, per example (see [`AllocationErrors`]).
    pub approximation: Vec<f64>,
    /// Principle 2 per example: `Σ_i |I({i})| (|1 − w_{i,{i}}| + Σ_{j≠i} |w_{j,{i}}|) / Σ|I|`.
    pub independent: Vec<f64>,
    /// Principle 3 per example:
    /// `Σ_{|S|≥2} |I(S)| (|1 − Σ_{i∈S} w_{i,S}| + Σ_{j∉S} |w_{j,S}|) / Σ|I|`.
    pub interaction: Vec<f64>,
    /// Fraction of `Σ|I|` carried by the probed effects (the rest is not measured).
    pub coverage: Vec<f64>,
}

impl HarsanyiInteractions {
    pub fn new(feature_mask: Tensor) -> Self {
        Self {
            feature_mask,
            baseline: Baseline::Zero,
            batching: Batching::default(),
        }
    }

    fn groups(&self, x: &Tensor) -> Result<FeatureGroups> {
        let g = FeatureGroups::new(&self.feature_mask, x)?;
        if g.count > MAX_PLAYERS {
            return Err(invalid("feature_mask", format!("{} groups need 2^{} coalitions per example; at most {MAX_PLAYERS} groups are supported", g.count, g.count)));
        }
        Ok(g)
    }

    /// `v(T)` for every coalition and its dividends, for one output per example.
    pub fn evaluate(
        &self,
        model: &dyn Explainable,
        x: &Tensor,
        target: &Target,
    ) -> Result<Interactions> {
        let p = prepare(model, x, target)?;
        let groups = self.groups(x)?;
        let (b, n) = (x.dim(0)?, groups.count);
        // Values, dividends and the transforms' work space live on the host in f64.
        let host_bytes = b.saturating_mul(3 << n).saturating_mul(8);
        if host_bytes > self.batching.budget_bytes {
            return Err(invalid("feature_mask", format!("{b} examples × 2^{n} coalitions need {host_bytes} bytes, over the budget of {} bytes: use fewer groups or examples", self.batching.budget_bytes)));
        }
        let coalitions: Vec<u64> = (0..1u64 << n).collect();
        let xbar = self.baseline.resolve(x)?;
        let v = groups.coalition_scores(
            model,
            x,
            &xbar,
            &p.seed,
            &coalitions,
            &self.batching,
            "harsanyi",
        )?;
        let values: Vec<Vec<f64>> = v.chunks(1 << n).map(<[f64]>::to_vec).collect();
        let dividends = values.iter().map(|v| mobius(v, n)).collect();
        Ok(Interactions {
            players: n,
            values,
            dividends,
        })
    }

    /// Principle errors of `method` on `model`: its weights `w_{·,S}` come from running it on
    /// the unanimity probe of each of the `max_effects` effects with the largest total `|I(S)|`
    /// over the batch. The baseline must be the same for every example (zero or a constant,
    /// or a tensor of batch 1); `attributions` of the model are needed for principle 1.
    pub fn principle_errors(
        &self,
        method: &dyn Attributor,
        interactions: &Interactions,
        x: &Tensor,
        attributions: &Tensor,
        max_effects: usize,
    ) -> Result<PrincipleErrors> {
        let groups = self.groups(x)?;
        let n = interactions.players;
        if groups.count != n || interactions.dividends.len() != x.dim(0)? {
            return Err(invalid("interactions", format!("were computed for {} examples and {n} groups, the input has {} examples and {} groups", interactions.dividends.len(), x.dim(0)?, groups.count)));
        }
        let shared = match &self.baseline {
            Baseline::Zero | Baseline::Constant(_) => true,
            Baseline::Tensor(t) => t.rank() < x.rank() || t.dim(0)? == 1,
            _ => false,
        };
        if !shared {
            return Err(invalid("baseline", "unanimity probes need one baseline for all examples (zero, a constant or a batch-1 tensor)"));
        }
        let xbar = self.baseline.resolve(&x.narrow(0, 0, 1)?)?;
        let a = interactions.group_sums(attributions, &self.feature_mask)?;
        let approximation = interactions
            .allocation_errors(&a)?
            .iter()
            .map(|e| e.approximation)
            .collect();
        // The effects to probe, by total |I(S)| over the batch.
        let mut effects: Vec<(u64, f64)> = (1..1u64 << n)
            .map(|s| {
                (
                    s,
                    interactions
                        .dividends
                        .iter()
                        .map(|d| d[s as usize].abs())
                        .sum(),
                )
            })
            .filter(|(_, w)| *w > 0.0)
            .collect();
        effects.sort_by(|p, q| q.1.total_cmp(&p.1));
        effects.truncate(max_effects);
        if groups.onehot.dim(0)? != 1 {
            return Err(invalid(
                "feature_mask",
                "unanimity probes need one feature mask shared by all examples",
            ));
        }
        let all = Tensor::arange(0u32, 1, x.device())?;
        let members = groups.for_examples(&all)?.squeeze(0)?.to_dtype(x.dtype())?; // (n, F)
        let b = x.dim(0)?;
        let (mut ind, mut inter, mut covered) = (vec![0.0; b], vec![0.0; b], vec![0.0; b]);
        for &(s, _) in &effects {
            let probe = Unanimity {
                members: members.clone(),
                baseline: xbar.flatten_from(1)?,
                set: s,
            };
            let w = interactions.group_sums(
                &method.attribute(&probe, x, &Target::Class(0))?.attributions,
                &self.feature_mask,
            )?;
            let size = probe.group_effects(x)?;
            for e in 0..b {
                let effect = interactions.dividends[e][s as usize].abs();
                let unit: f64 = (0..n)
                    .filter(|i| s >> i & 1 == 1)
                    .map(|i| size[e][i])
                    .product();
                if effect == 0.0 || unit.abs() < 1e-12 {
                    continue;
                }
                let w: Vec<f64> = w[e].iter().map(|v| v / unit).collect();
                let inside: f64 = (0..n).filter(|i| s >> i & 1 == 1).map(|i| w[i]).sum();
                let outside: f64 = (0..n).filter(|i| s >> i & 1 == 0).map(|i| w[i].abs()).sum();
                let err = effect * ((1.0 - inside).abs() + outside);
                if s.count_ones() == 1 {
                    ind[e] += err
                } else {
                    inter[e] += err
                }
                covered[e] += effect;
            }
        }
        let scale: Vec<f64> = interactions
            .dividends
            .iter()
            .map(|d| d[1..].iter().map(|v| v.abs()).sum::<f64>().max(1e-300))
            .collect();
        let rel = |v: Vec<f64>| -> Vec<f64> { v.iter().zip(&scale).map(|(a, s)| a / s).collect() };
        Ok(PrincipleErrors {
            approximation,
            independent: rel(ind),
            interaction: rel(inter),
            coverage: rel(covered),
        })
    }
}

/// `f_S(x) = Π_{i∈S} Σ_{k∈G_i} (x_k − x̄_k)`: one output, a single Harsanyi dividend at S.
struct Unanimity {
    members: Tensor,
    baseline: Tensor,
    set: u64,
}

impl Unanimity {
    /// `(rows, n)` group sums of `x − x̄`.
    fn sums(&self, x: &Tensor) -> candle_explain_core::Result<Tensor> {
        let d = x.flatten_from(1)?.broadcast_sub(&self.baseline)?;
        Ok(d.matmul(&self.members.t()?)?)
    }

    fn group_effects(&self, x: &Tensor) -> Result<Vec<Vec<f64>>> {
        Ok(self.sums(x)?.to_dtype(DType::F64)?.to_vec2()?)
    }
}

impl Explainable for Unanimity {
    fn forward_with(&self, x: &Tensor, ctx: &RuleCtx) -> candle_explain_core::Result<Tensor> {
        // A polynomial with nothing a rule could replace: rule-based methods read it as
        // Gradient × Input, as the module docs say, instead of refusing it.
        ctx.rule_free();
        let s = self.sums(x)?;
        let mut out = x.ones_like()?.flatten_from(1)?.narrow(1, 0, 1)?;
        for i in (0..s.dim(1)?).filter(|i| self.set >> i & 1 == 1) {
            out = (out * s.narrow(1, i, 1)?)?;
        }
        Ok(out)
    }
}

impl Interactions {
    /// `v(N) − v(∅)` per example.
    pub fn total(&self) -> Vec<f64> {
        self.values.iter().map(|v| v[v.len() - 1] - v[0]).collect()
    }

    /// Shapley values from the dividends: `φ_i = Σ_{S∋i} I(S) / |S|`, `[example][player]`.
    pub fn shapley(&self) -> Vec<Vec<f64>> {
        let n = self.players;
        self.dividends
            .iter()
            .map(|d| {
                let mut phi = vec![0.0; n];
                for (s, v) in d.iter().enumerate().skip(1) {
                    let share = v / (s as u64).count_ones() as f64;
                    (0..n)
                        .filter(|i| s >> i & 1 == 1)
                        .for_each(|i| phi[i] += share);
                }
                phi
            })
            .collect()
    }

    /// Per-group sums `[example][player]` of feature attributions (the input's shape). Methods
    /// that give every feature of a group the group's value (ShapleyValues, FeatureAblation
    /// with a mask) should pass their group values instead.
    pub fn group_sums(
        &self,
        attributions: &Tensor,
        feature_mask: &Tensor,
    ) -> Result<Vec<Vec<f64>>> {
        let groups = FeatureGroups::new(feature_mask, attributions)?;
        if groups.count != self.players || attributions.dim(0)? != self.values.len() {
            return Err(invalid(
                "attributions",
                format!(
                    "expected {} examples over {} groups, got shape {:?} with {} groups",
                    self.values.len(),
                    self.players,
                    attributions.dims(),
                    groups.count
                ),
            ));
        }
        let all = Tensor::arange(0u32, attributions.dim(0)? as u32, attributions.device())?;
        let onehot = groups.for_examples(&all)?.to_dtype(DType::F64)?; // (B, n, F)
        let a = attributions
            .to_dtype(DType::F64)?
            .flatten_from(1)?
            .unsqueeze(2)?;
        Ok(onehot
            .contiguous()?
            .matmul(&a.contiguous()?)?
            .squeeze(2)?
            .to_vec2()?)
    }

    /// Errors against the principles of an attribution vector per example, `[example][player]`.
    pub fn allocation_errors(&self, attributions: &[Vec<f64>]) -> Result<Vec<AllocationErrors>> {
        let n = self.players;
        if attributions.len() != self.dividends.len() || attributions.iter().any(|a| a.len() != n) {
            return Err(invalid(
                "attributions",
                format!("expected {} examples × {n} players", self.dividends.len()),
            ));
        }
        let full = (1usize << n) - 1;
        Ok(self
            .dividends
            .iter()
            .zip(attributions)
            .map(|(d, a)| {
                let split = |keep: fn(f64) -> f64| -> Vec<f64> {
                    let mut t: Vec<f64> = d.iter().map(|&v| keep(v)).collect();
                    t[0] = 0.0;
                    zeta(&mut t, n);
                    t
                };
                // pos(T) = Σ_{S⊆T} I⁺(S), neg(T) = Σ_{S⊆T} I⁻(S), sum(T) = a(T).
                let (pos, neg) = (split(|v| v.max(0.0)), split(|v| v.min(0.0)));
                let mut sum = vec![0.0; 1 << n];
                for (i, v) in a.iter().enumerate() {
                    sum[1 << i] = *v;
                }
                zeta(&mut sum, n);
                let mut worst: f64 = 0.0;
                for t in 1..full {
                    let upper = pos[full] - pos[full ^ t] + neg[t];
                    let lower = pos[t] + neg[full] - neg[full ^ t];
                    worst = worst.max(sum[t] - upper).max(lower - sum[t]);
                }
                let scale = d[1..].iter().map(|v| v.abs()).sum::<f64>().max(1e-300);
                let total = pos[full] + neg[full];
                AllocationErrors {
                    approximation: (sum[full] - total).abs() / scale,
                    unfairness: worst / scale,
                }
            })
            .collect())
    }
}

/// Subset-sum (zeta) transform in place: `t[T] ← Σ_{S⊆T} t[S]`.
fn zeta(t: &mut [f64], n: usize) {
    for j in 0..n {
        for s in 0..t.len() {
            if s >> j & 1 == 1 {
                t[s] += t[s ^ (1 << j)];
            }
        }
    }
}

/// Möbius transform: the dividends `I(S) = Σ_{T⊆S} (−1)^{|S|−|T|} v(T)`.
fn mobius(v: &[f64], n: usize) -> Vec<f64> {
    let mut t = v.to_vec();
    for j in 0..n {
        for s in 0..t.len() {
            if s >> j & 1 == 1 {
                t[s] -= t[s ^ (1 << j)];
            }
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mobius_inverts_zeta() {
        let v: Vec<f64> = (0..16).map(|i| ((i * 7 + 3) % 11) as f64 - 4.0).collect();
        let mut back = mobius(&v, 4);
        zeta(&mut back, 4);
        assert_eq!(back, v);
    }
}
