//! The icon objective (spec §4.1) and whitening (§4.2).
use anyhow::{ensure, Result};
use tch::{Device, Kind, Tensor};

/// How the cosine factor of `dot × cos^n` is formed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CosineForm {
    /// The notebooks' `direction_neuron_cossim_S`: `dot = mean_c(h·v)`,
    /// `cs = dot / (1e-4 + ‖h‖)`, `obj = dot · max(0.1, cs)^n`. The spec's default (fidelity).
    Notebook,
    /// lucid's `direction_neuron`: `dot = h·v`, `cos = dot / ((ε+‖h‖)(ε+‖v‖))`,
    /// `obj = dot · max(0.1, cos)^n`.
    Clean,
}

impl CosineForm {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "notebook" => Ok(CosineForm::Notebook),
            "clean" => Ok(CosineForm::Clean),
            other => anyhow::bail!("objective form must be notebook or clean, not {other:?}"),
        }
    }
}

/// `dot × cos^power` with one of the two cosine forms.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Objective {
    pub form: CosineForm,
    /// n in `cos^n`; 4 in the notebooks (0 gives the plain dot product).
    pub cossim_power: f64,
}

impl Default for Objective {
    fn default() -> Self {
        Objective {
            form: CosineForm::Notebook,
            cossim_power: 4.0,
        }
    }
}

const EPS: f64 = 1e-4;

impl Objective {
    /// Per-icon objective `[B]` of the centre activations `h` `[B,C]` against the (already
    /// whitened) directions `v` `[B,C]`.
    pub fn per_icon(&self, h: &Tensor, v: &Tensor) -> Tensor {
        let prod = h * v;
        let dims = [1i64];
        let h_norm = h.norm_scalaropt_dim(2, dims.as_slice(), false);
        let (dot, cos) = match self.form {
            CosineForm::Notebook => {
                let dot = prod.mean_dim(dims.as_slice(), false, Kind::Float);
                let cs = &dot / (h_norm + EPS);
                (dot, cs)
            }
            CosineForm::Clean => {
                let dot = prod.sum_dim_intlist(dims.as_slice(), false, Kind::Float);
                let v_norm = v.norm_scalaropt_dim(2, dims.as_slice(), false);
                let cs = &dot / (h_norm + EPS) / (v_norm + EPS);
                (dot, cs)
            }
        };
        if self.cossim_power == 0.0 {
            dot
        } else {
            dot * cos.clamp_min(0.1).pow_tensor_scalar(self.cossim_power)
        }
    }
}

/// Width of the border band of lucid's `penalize_boundary_complexity(shape, w=5)` (spec §4.5).
pub const BOUNDARY_BAND: i64 = 5;

/// lucid `_tf_blur(x, w=5)`: per channel, a 5×5 kernel with 1 inside and 0.5 on its border,
/// zero-padded ("SAME") and divided by the same convolution of ones, `[B,C,h,w]` → same shape.
pub fn blur5(img: &Tensor) -> Tensor {
    let c = img.size()[1];
    let mut k = [0.5f32; 25];
    for y in 1..4 {
        for x in 1..4 {
            k[y * 5 + x] = 1.0;
        }
    }
    let kernel = Tensor::from_slice(&k)
        .view([1, 1, 5, 5])
        .expand([c, 1, 5, 5], false)
        .contiguous()
        .to_device(img.device())
        .to_kind(img.kind());
    let conv = |t: &Tensor| t.conv2d(&kernel, None::<Tensor>, [1, 1], [2, 2], [1, 1], c);
    conv(img) / conv(&img.ones_like())
}

/// lucid's `penalize_boundary_complexity(shape, w=5)` per icon `[B]` of images `[B,3,h,w]` in
/// [0,1]: inside the border band of width `w`, `Σ (blur(img) − img)² + 0.8·(img − 0.5)²`. The
/// REC stack subtracts it from the objective with weight 1 (spec §4.5): borders go smooth grey.
pub fn boundary_penalty(img: &Tensor, w: i64) -> Tensor {
    let s = img.size();
    let (h, wd) = (s[2], s[3]);
    let mask = img.ones_like();
    if h > 2 * w && wd > 2 * w {
        let _ = mask
            .narrow(2, w, h - 2 * w)
            .narrow(3, w, wd - 2 * w)
            .fill_(0.0);
    }
    let diffs = (blur5(img) - img).square() + (img - 0.5).square() * 0.8;
    (diffs * mask).sum_dim_intlist([1i64, 2, 3].as_slice(), false, Kind::Float)
}

/// The centre vector `[B,C]` of a layer output `[B,C,h,w]` (`h//2, w//2`, as the notebooks).
pub fn centre_vectors(layer: &Tensor) -> Tensor {
    let s = layer.size();
    layer.select(2, s[2] / 2).select(2, s[3] / 2)
}

/// Rows per chunk of [`SecondMoment::add_rows`] in [`whitening_matrix`].
pub const WHITENING_CHUNK_ROWS: usize = 4096;

/// The uncentred second moment `AᵀA` of a matrix `A` (`n×c`) whose rows arrive in chunks: the
/// whitening of a million-row layer never copies the matrix (an f64 copy would be 10 GB at
/// 1M × 1,280). Each chunk's `AₖᵀAₖ` is an f32 matrix product (sums of at most a chunk's rows,
/// half the time of f64: 30 s instead of 60 s at 1M × 1,280 on 2 cores), and the chunks are
/// accumulated in f64, so the rounding does not grow with N: on 50,000 rows × 1,280 the inverse
/// differs from the all-f64 one by 8e-8 of its largest entry, below the f32 it is stored in.
pub struct SecondMoment {
    c: usize,
    rows: usize,
    /// `Σ_chunks AₖᵀAₖ`, `[c, c]`, f64.
    sum: Tensor,
}

impl SecondMoment {
    pub fn new(c: usize) -> Self {
        SecondMoment {
            c,
            rows: 0,
            sum: Tensor::zeros([c as i64, c as i64], (Kind::Double, Device::Cpu)),
        }
    }

    /// Adds the rows of `chunk` (`rows × c`, row-major) to the sum.
    pub fn add_rows(&mut self, chunk: &[f32]) -> Result<()> {
        ensure!(
            self.c > 0 && chunk.len().is_multiple_of(self.c),
            "a chunk of {} values is not whole rows of {} channels",
            chunk.len(),
            self.c
        );
        let rows = chunk.len() / self.c;
        if rows == 0 {
            return Ok(());
        }
        let a = Tensor::from_slice(chunk).view([rows as i64, self.c as i64]);
        let product = a.transpose(0, 1).matmul(&a).to_kind(Kind::Double);
        self.sum += product;
        self.rows += rows;
        Ok(())
    }

    /// Rows added so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// `S = (Σ + λI)⁻¹` with `Σ = AᵀA/N` and `λ = ridge × mean diagonal of Σ`, as f32 `[c, c]`.
    pub fn whitening(&self, ridge: f64) -> Result<Tensor> {
        ensure!(self.rows > 0, "whitening needs at least one row");
        let sigma = &self.sum / self.rows as f64;
        let mean_diag = sigma.diagonal(0, 0, 1).mean(Kind::Double).double_value(&[]);
        let lambda = ridge * mean_diag.max(1e-12);
        let eye = Tensor::eye(self.c as i64, (Kind::Double, Device::Cpu));
        let s = Tensor::f_linalg_inv(&(sigma + eye * lambda))?;
        Ok(s.to_kind(Kind::Float))
    }
}

/// Whitening matrix `S = (Σ + λI)⁻¹` with `Σ = AᵀA/N`, the uncentred second moment of the
/// layer's sampled activations `A` (`n×c`, row-major), accumulated a chunk of
/// [`WHITENING_CHUNK_ROWS`] rows at a time ([`SecondMoment`]). `λ` is a small ridge
/// (`ridge × mean diagonal`) because dead channels make `Σ` singular (spec §4.2).
pub fn whitening_matrix(acts: &[f32], n: usize, c: usize, ridge: f64) -> Result<Tensor> {
    whitening_matrix_chunked(acts, n, c, ridge, WHITENING_CHUNK_ROWS)
}

/// [`whitening_matrix`] with `chunk_rows` rows per chunk.
pub fn whitening_matrix_chunked(
    acts: &[f32],
    n: usize,
    c: usize,
    ridge: f64,
    chunk_rows: usize,
) -> Result<Tensor> {
    ensure!(
        acts.len() == n * c && n > 0 && chunk_rows > 0,
        "whitening needs an n×c matrix"
    );
    let mut moment = SecondMoment::new(c);
    for chunk in acts.chunks(chunk_rows * c) {
        moment.add_rows(chunk)?;
    }
    moment.whitening(ridge)
}

/// `v' = S v` for every row of `directions` `[B,C]`.
pub fn whiten(directions: &Tensor, s: &Tensor) -> Tensor {
    directions.matmul(&s.to_device(directions.device()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &[f32], rows: i64) -> Tensor {
        Tensor::from_slice(v).view([rows, -1])
    }

    #[test]
    fn notebook_and_clean_forms_by_hand() {
        let h = t(&[3.0, 4.0], 1);
        let v = t(&[1.0, 0.0], 1);
        // Notebook: dot = 3/2, cs = 1.5/5 = 0.3 → 1.5·0.3⁴.
        let nb = Objective::default().per_icon(&h, &v).double_value(&[0]);
        assert!((nb - 1.5 * 0.3f64.powi(4)).abs() < 1e-6, "{nb}");
        // Clean: dot = 3, cos = 0.6 → 3·0.6⁴.
        let clean = Objective {
            form: CosineForm::Clean,
            cossim_power: 4.0,
        };
        let c = clean.per_icon(&h, &v).double_value(&[0]);
        // (ε = 1e-4 in both norms shifts the value by ~2e-4.)
        assert!((c - 3.0 * 0.6f64.powi(4)).abs() < 1e-3, "{c}");
        // The 0.1 floor: orthogonal h gives dot·0.1⁴ = 0.
        let o = clean.per_icon(&t(&[0.0, 1.0], 1), &v).double_value(&[0]);
        assert_eq!(o, 0.0);
    }

    #[test]
    fn boundary_penalty_by_hand() {
        // Mid-grey everywhere: blur = image and image = 0.5, no penalty at all.
        let grey = Tensor::full([1, 3, 16, 16], 0.5, (Kind::Float, Device::Cpu));
        assert_eq!(boundary_penalty(&grey, 5).double_value(&[0]), 0.0);
        // A constant image c: blur = c exactly, so the penalty is 0.8·(c − 0.5)² per band pixel;
        // the band of a 16×16 image with w = 5 holds 256 − 6² = 220 pixels per channel.
        let white = Tensor::ones([2, 3, 16, 16], (Kind::Float, Device::Cpu));
        let p = boundary_penalty(&white, 5);
        assert!((p.double_value(&[1]) - 3.0 * 220.0 * 0.8 * 0.25).abs() < 1e-3);
        // A bright pixel in the middle, more than 2 px (the blur's reach) from the band: free.
        let inside = grey.copy();
        let _ = inside.narrow(2, 8, 1).narrow(3, 8, 1).fill_(1.0);
        assert_eq!(boundary_penalty(&inside, 5).double_value(&[0]), 0.0);
        // The same pixel in the band costs at least its own 0.8·0.5² and more through the blur.
        let edge = grey.copy();
        let _ = edge
            .narrow(1, 0, 1)
            .narrow(2, 2, 1)
            .narrow(3, 8, 1)
            .fill_(1.0);
        let p = boundary_penalty(&edge, 5).double_value(&[0]);
        assert!(p > 0.8 * 0.25 + 0.1 && p < 1.0, "{p}");
    }

    #[test]
    fn whitening_inverts_the_second_moment() {
        let acts = [1.0f32, 0.0, 0.0, 2.0, 1.0, 1.0];
        let s = whitening_matrix(&acts, 3, 2, 0.0).unwrap();
        // Σ = [[2,1],[1,5]]/3 → Σ·S = I.
        let sigma = t(&[2.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0, 5.0 / 3.0], 2);
        let id = sigma.matmul(&s);
        let err = (id - Tensor::eye(2, (Kind::Float, Device::Cpu)))
            .abs()
            .max();
        assert!(err.double_value(&[]) < 1e-5);
    }

    #[test]
    fn chunked_whitening_equals_the_one_shot_one() {
        // 37 rows of 5 channels (one dead), in chunks of 8: the last chunk has 5 rows.
        let (n, c) = (37usize, 5usize);
        let acts: Vec<f32> = (0..n * c)
            .map(|i| {
                if i % c == 3 {
                    0.0
                } else {
                    ((i * 7919) % 101) as f32 / 10.0 - 3.0
                }
            })
            .collect();
        // The one-shot reference: the whole matrix in f64 at once.
        let a = t(&acts, n as i64).to_kind(Kind::Double);
        let sigma = a.transpose(0, 1).matmul(&a) / n as f64;
        let mean_diag = sigma.diagonal(0, 0, 1).mean(Kind::Double).double_value(&[]);
        let eye = Tensor::eye(c as i64, (Kind::Double, Device::Cpu));
        let want = (sigma + eye * (1e-3 * mean_diag))
            .inverse()
            .to_kind(Kind::Float);
        for chunk_rows in [8, 1, 36, 37, 100] {
            let got = whitening_matrix_chunked(&acts, n, c, 1e-3, chunk_rows).unwrap();
            let scale = want.abs().max().double_value(&[]);
            let err = (&got - &want).abs().max().double_value(&[]);
            assert!(
                err <= 1e-5 * scale,
                "chunk {chunk_rows}: {err} (scale {scale})"
            );
        }
        let default = whitening_matrix(&acts, n, c, 1e-3).unwrap();
        assert!(
            (&default - &want).abs().max().double_value(&[])
                <= 1e-5 * want.abs().max().double_value(&[])
        );
        // Not whole rows: refused.
        assert!(SecondMoment::new(c).add_rows(&acts[..7]).is_err());
    }
}
