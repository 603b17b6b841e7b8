//! f32 matrix products as loops of register tiles ([`MatTile`], the GEMM microkernel).
//!
//! A product `c[m, n] = epilogue(Σ_k a[m, k] b[k, n])` is cut into tiles of [`MR`] rows by [`NR`]
//! columns. The loops are
//!
//! ```text
//! for p in 0..n/NR {                         panels of NR columns (the parallel loop)
//!     for t in 0..m/MR { tile MRxNR }        full row tiles
//!     tile (m%MR)xNR                         the last rows, if any
//! }
//! the same for the last n%NR columns         (a separate kernel when it would break parallelism)
//! ```
//!
//! so one panel of `b` (`k x NR` floats) stays in L1 while every row tile of `a` streams past it.
//! `a` is read in place with any strides (a tile loads one scalar of it per row and step of `k`).
//! `b` is read as *panels*: the `NR` columns of one panel stored contiguously, row after row
//! ([`panel_offset`]). Weights are packed into panels once, when the program is built; a computed `b`
//! is packed by a small kernel before the product, or read in place when its rows are contiguous and
//! the product is too small to pay for the copy.
//!
//! Every element of `c` is one fma chain in increasing `k`, whatever tile it falls in, so results do
//! not depend on the tiling (and the interpreter and the JIT agree bit for bit).

use super::KernelDraft;
use crate::builder::KernelBuilder;
use crate::ir::*;
use sinter_ir::{Tensor, TensorData};

/// Rows of a full tile.
pub(crate) const MR: usize = MAX_TILE_ROWS as usize;

/// Columns of a full tile and width of a full panel.
pub(crate) const NR: usize = MAX_TILE_COLS as usize;

/// Where element `(kk, col)` of a `k x n` matrix lives in panel layout: full panels of [`NR`]
/// columns, then the last `n % NR` columns as one narrower panel, each panel row after row.
pub(crate) fn panel_offset(k: usize, n: usize, kk: usize, col: usize) -> usize {
    let (panel, c) = (col / NR, col % NR);
    let width = if (panel + 1) * NR <= n { NR } else { n % NR };
    panel * NR * k + kk * width + c
}

/// How a tile nest reads `b`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum BLayout {
    /// Panel layout ([`panel_offset`]) from the base index.
    Panels,
    /// Rows `row` elements apart, columns contiguous.
    Rows { row: i64 },
}

/// The stored value of one element: `(kernel, accumulated sum, m coordinate, n coordinate)`.
pub(crate) type TileEpilogueFn<'e> = dyn Fn(&mut KernelBuilder, Expr, &Index, &Index) -> Expr + 'e;

/// One `m x n x k` f32 product inside a kernel (within whatever loops enclose it).
pub(crate) struct TileNest<'e> {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub a: BufferId,
    pub a_base: Index,
    pub a_m: i64,
    pub a_k: i64,
    pub b: BufferId,
    pub b_base: Index,
    pub b_layout: BLayout,
    pub c: BufferId,
    pub c_base: Index,
    pub c_m: i64,
    pub epilogue: Option<&'e TileEpilogueFn<'e>>,
}

/// Which columns [`emit_tiles`] covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Columns {
    /// The `n / NR` full panels, as one loop.
    FullPanels,
    /// The last `n % NR` columns.
    Remainder,
    All,
}

/// How to split a tile nest over kernels, each with its kernel stem: with `outer` products (a
/// batch loop around the nest) one kernel whose outer loop runs in parallel; otherwise, when `n`
/// has both full panels and a remainder, the full panels (one loop over panels, parallel) and the
/// last `n % NR` columns as a second kernel named `<stem>_cols`.
pub(crate) fn kernel_parts(stem: &str, outer: usize, n: usize) -> Vec<(String, Columns)> {
    if outer > 1 || n.is_multiple_of(NR) || n < NR {
        vec![(stem.to_string(), Columns::All)]
    } else {
        vec![
            (stem.to_string(), Columns::FullPanels),
            (format!("{stem}_cols"), Columns::Remainder),
        ]
    }
}

/// Emits the tiles of `nest` that cover `columns`.
pub(crate) fn emit_tiles(kb: &mut KernelBuilder, nest: &TileNest, columns: Columns) {
    emit_tiles_into(kb, nest, columns, false);
}

/// Emits the tiles of `nest` that cover `columns`; with `accumulate` the tiles start from the
/// values in `c` (`c += a · b`) instead of zero.
pub(crate) fn emit_tiles_into(
    kb: &mut KernelBuilder,
    nest: &TileNest,
    columns: Columns,
    accumulate: bool,
) {
    let (full_panels, rem_n) = (nest.n / NR, nest.n % NR);
    let panel_b = |p: Index, width: usize| -> (Index, i64) {
        match nest.b_layout {
            BLayout::Panels => (
                nest.b_base.clone().plus(p.scaled((NR * nest.k) as i64)),
                width as i64,
            ),
            BLayout::Rows { row } => (nest.b_base.clone().plus(p.scaled(NR as i64)), row),
        }
    };
    if matches!(columns, Columns::FullPanels | Columns::All) && full_panels > 0 {
        kb.loop_(full_panels, |kb, p| {
            let p = Index::var(p);
            let (b_index, b_depth) = panel_b(p.clone(), NR);
            row_tiles(
                kb,
                nest,
                p.scaled(NR as i64),
                NR,
                b_index,
                b_depth,
                accumulate,
            );
        });
    }
    if matches!(columns, Columns::Remainder | Columns::All) && rem_n > 0 {
        let p = Index::constant(full_panels as i64);
        let (b_index, b_depth) = panel_b(p.clone(), rem_n);
        row_tiles(
            kb,
            nest,
            p.scaled(NR as i64),
            rem_n,
            b_index,
            b_depth,
            accumulate,
        );
    }
}

/// The tiles of one panel: full row tiles in a loop, then the last rows.
fn row_tiles(
    kb: &mut KernelBuilder,
    nest: &TileNest,
    n0: Index,
    width: usize,
    b_index: Index,
    b_depth: i64,
    accumulate: bool,
) {
    let (full_rows, rem_m) = (nest.m / MR, nest.m % MR);
    let tile = |kb: &mut KernelBuilder, m0: Index, rows: usize| {
        let epilogue = nest.epilogue.map(|f| {
            let (row, col) = (kb.free_var(), kb.free_var());
            let acc = kb.free_local(sinter_ir::DType::F32);
            let m = m0.clone().plus(Index::var(row));
            let n = n0.clone().plus(Index::var(col));
            let value = f(kb, Expr::Local(acc), &m, &n);
            TileEpilogue {
                row,
                col,
                acc,
                value,
            }
        });
        kb.mat_tile(MatTile {
            rows: rows as u32,
            cols: width as u32,
            depth: nest.k,
            a: nest.a,
            a_index: nest.a_base.clone().plus(m0.scaled(nest.a_m)),
            a_row: nest.a_m,
            a_depth: nest.a_k,
            b: nest.b,
            b_index: b_index.clone(),
            b_depth,
            c: nest.c,
            c_index: nest
                .c_base
                .clone()
                .plus(m0.scaled(nest.c_m))
                .plus(n0.clone()),
            c_row: nest.c_m,
            accumulate,
            epilogue,
        });
    };
    if full_rows > 0 {
        kb.loop_(full_rows, |kb, t| {
            tile(kb, Index::var(t).scaled(MR as i64), MR)
        });
    }
    if rem_m > 0 {
        tile(kb, Index::constant((full_rows * MR) as i64), rem_m);
    }
}

/// `count` matrices of `k x n` f32, matrix `j` at `j * k * n` with element `(kk, col)` at
/// `kk * b_k + col * b_n` within it, repacked into panel layout (same matrix order and size).
pub(crate) fn pack_panels(
    data: &[f32],
    count: usize,
    k: usize,
    n: usize,
    b_k: i64,
    b_n: i64,
) -> Result<Tensor, String> {
    let size = k * n;
    let mut packed = vec![0.0f32; count * size];
    for j in 0..count {
        for kk in 0..k {
            for col in 0..n {
                let src = (j * size) as i64 + kk as i64 * b_k + col as i64 * b_n;
                let value = usize::try_from(src)
                    .ok()
                    .and_then(|s| data.get(s))
                    .ok_or_else(|| format!("packing reads element {src} of {}", data.len()))?;
                packed[j * size + panel_offset(k, n, kk, col)] = *value;
            }
        }
    }
    Tensor::new(vec![count * size], TensorData::F32(packed.into())).map_err(|e| e.to_string())
}

/// Emits, in `kd`, loops that copy `count` matrices of `b` (layout as in [`pack_panels`]) into
/// panel layout in `packed`.
pub(crate) fn emit_pack(
    kd: &mut KernelDraft,
    b: BufferId,
    packed: BufferId,
    (count, k, n): (usize, usize, usize),
    (b_k, b_n): (i64, i64),
) {
    let size = (k * n) as i64;
    let (full_panels, rem_n) = (n / NR, n % NR);
    kd.kb.loop_(count, |kb, j| {
        if full_panels > 0 {
            kb.loops(&[full_panels, k, NR], |kb, v| {
                let (p, kk, c) = (v[0], v[1], v[2]);
                let dst = Index::affine(
                    [(j, size), (p, (NR * k) as i64), (kk, NR as i64), (c, 1)],
                    0,
                );
                let src = Index::affine([(j, size), (kk, b_k), (p, NR as i64 * b_n), (c, b_n)], 0);
                kb.store(packed, dst, Expr::load(b, src));
            });
        }
        if rem_n > 0 {
            let col0 = (full_panels * NR) as i64;
            kb.loops(&[k, rem_n], |kb, v| {
                let (kk, c) = (v[0], v[1]);
                let dst = Index::affine([(j, size), (kk, rem_n as i64), (c, 1)], col0 * k as i64);
                let src = Index::affine([(j, size), (kk, b_k), (c, b_n)], col0 * b_n);
                kb.store(packed, dst, Expr::load(b, src));
            });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panel_offsets_are_a_permutation() {
        for (k, n) in [(1, 1), (3, 8), (5, 13), (7, 16), (2, 3)] {
            let mut seen = vec![false; k * n];
            for kk in 0..k {
                for col in 0..n {
                    let at = panel_offset(k, n, kk, col);
                    assert!(!seen[at], "({kk}, {col}) of {k}x{n} reuses {at}");
                    seen[at] = true;
                }
            }
            assert!(seen.iter().all(|&s| s));
        }
    }

    #[test]
    fn a_panel_row_is_contiguous() {
        // Columns 8..16 of row 2 of a 4 x 20 matrix: the second full panel.
        let base = panel_offset(4, 20, 2, 8);
        for c in 0..NR {
            assert_eq!(panel_offset(4, 20, 2, 8 + c), base + c);
        }
        // The last 4 columns form a panel of width 4.
        assert_eq!(panel_offset(4, 20, 1, 17) - panel_offset(4, 20, 0, 17), 4);
    }
}
