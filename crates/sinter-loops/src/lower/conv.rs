//! conv, fused_conv and conv_transpose, N-d over the spatial axes of `[N, C, *spatial]`.
//!
//! fused_conv is conv with its residual add and activation as the first steps of the output's
//! epilogue (the tiles' epilogue, or the direct nest's store); conv_pool is in `conv_pool.rs`.
//!
//! conv: when any window position falls outside the input (pads, or the last window overhanging),
//! the kernel first copies `x` into a zero-filled scratch buffer large enough for every window, so
//! the main nest's loads are affine and always in bounds. The nest is
//! `for n, group, oc_in_group, *out_spatial { acc = bias; for ic_in_group, *kernel { acc = fma(..) } }`:
//! the output's last spatial dim is the innermost output loop, with the reduction inside it. Splitting
//! the output channel into (group, channel in group) keeps the input-channel index affine.
//!
//! conv_transpose scatters: every input element adds `x * w` into a zero-initialised scratch buffer
//! covering the full (unpadded) result and every output position, then the output (shifted by the
//! begin pad, which `same_*` may make negative) is read back with the bias added. Pads and output
//! sizes follow sinter-ref's geometry exactly.

use super::fuse::{own_steps, OwnStep};
use super::tiles::{emit_tiles, kernel_parts, BLayout, TileEpilogueFn, TileNest};
use super::{cst, Lowerer, NodeCx, Operand};
use crate::builder::{row_major_strides, KernelBuilder};
use crate::ir::*;
use sinter_ir::geometry::{dilated_extent, same_pads};
use sinter_ir::{AutoPad, DType, Op};
use std::ops::Add;

pub(super) fn lower(lw: &mut Lowerer, cx: &NodeCx) -> Result<(), String> {
    match cx.op {
        Op::Conv { .. } => lower_conv(lw, cx, cx.op, &[]),
        // The residual add and the activation of `fused_parts` become the conv's own epilogue.
        Op::FusedConv { .. } => {
            let (parts, own) = own_steps(cx)?;
            lower_conv(lw, cx, &parts.product, &own)
        }
        Op::ConvPool { .. } => super::conv_pool::lower(lw, cx),
        Op::ConvTranspose {
            strides,
            pads,
            dilations,
            group,
            auto_pad,
            output_padding,
            output_shape: _,
        } => lower_conv_transpose(
            lw,
            cx,
            strides,
            pads,
            dilations,
            *group,
            *auto_pad,
            output_padding,
        ),
        _ => Err("not a convolution".into()),
    }
}

/// `values` per spatial axis, or all ones when empty.
pub(crate) fn per_axis_or_ones(name: &str, values: &[i64], n: usize) -> Result<Vec<usize>, String> {
    if values.is_empty() {
        return Ok(vec![1; n]);
    }
    if values.len() != n || values.iter().any(|&v| v < 1) {
        return Err(format!("`{name}` {values:?} needs {n} positive entries"));
    }
    Ok(values.iter().map(|&v| v as usize).collect())
}

/// Begin and end pads per axis after resolving `auto_pad` (`same_*` by `sinter_ir::geometry`, as
/// sinter-ref's conv and pools do).
pub(crate) fn resolve_pads(
    auto_pad: AutoPad,
    pads: &[i64],
    in_spatial: &[usize],
    stride: &[usize],
    extent: &[usize],
) -> Result<(Vec<usize>, Vec<usize>), String> {
    let n = in_spatial.len();
    match auto_pad {
        AutoPad::NotSet if pads.is_empty() => Ok((vec![0; n], vec![0; n])),
        AutoPad::NotSet => {
            if pads.len() != 2 * n || pads.iter().any(|&p| p < 0) {
                return Err(format!(
                    "`pads` {pads:?} needs {} non-negative entries",
                    2 * n
                ));
            }
            let p: Vec<usize> = pads.iter().map(|&p| p as usize).collect();
            Ok((p[..n].to_vec(), p[n..].to_vec()))
        }
        AutoPad::Valid => Ok((vec![0; n], vec![0; n])),
        AutoPad::SameUpper | AutoPad::SameLower => Ok((0..n)
            .map(|a| same_pads(auto_pad, in_spatial[a], stride[a], extent[a]))
            .unzip()),
    }
}

/// A copy of `x` (`[lead.., spatial..]`) into scratch memory of `[lead.., padded..]` filled with
/// `fill`, the input starting at `begin` on each spatial axis.
pub(crate) struct PaddedCopy<'a> {
    pub x: BufferId,
    pub x_shape: &'a [usize],
    pub n_lead: usize,
    pub begin: &'a [usize],
    pub padded: &'a [usize],
    pub fill: Expr,
    pub dtype: DType,
}

/// `copy`'s input itself when the copy would change nothing (no begin pad, the padded extents the
/// input's), else [`pad_spatial_into_scratch`] into scratch `"pad"`; returns the buffer to read and
/// its shape.
pub(crate) fn padded_source(
    k: &mut super::KernelDraft,
    copy: PaddedCopy,
) -> (BufferId, Vec<usize>) {
    let in_sp = &copy.x_shape[copy.n_lead..];
    if copy.begin.iter().all(|&b| b == 0) && copy.padded == in_sp {
        (copy.x, copy.x_shape.to_vec())
    } else {
        pad_spatial_into_scratch(k, "pad", copy)
    }
}

/// Emits `copy` inside kernel `k`; returns the scratch buffer and its shape.
pub(crate) fn pad_spatial_into_scratch(
    k: &mut super::KernelDraft,
    name: &str,
    copy: PaddedCopy,
) -> (BufferId, Vec<usize>) {
    let PaddedCopy {
        x,
        x_shape,
        n_lead,
        begin,
        padded,
        fill,
        dtype,
    } = copy;
    let mut scratch_shape = x_shape[..n_lead].to_vec();
    scratch_shape.extend_from_slice(padded);
    let xp = k.scratch(name, dtype, &scratch_shape);
    let total: usize = scratch_shape.iter().product();
    k.kb.loop_(total, |kb, i| kb.store(xp, Index::var(i), fill));
    let sp_strides = row_major_strides(&scratch_shape);
    let x_strides = row_major_strides(x_shape);
    let offset: i64 = begin
        .iter()
        .enumerate()
        .map(|(a, &b)| b as i64 * sp_strides[n_lead + a])
        .sum();
    k.kb.loops(x_shape, |kb, vars| {
        kb.store(
            xp,
            Index::strided(vars, &sp_strides, offset),
            Expr::load(x, Index::strided(vars, &x_strides, 0)),
        );
    });
    (xp, scratch_shape)
}

fn float_dtype(dtype: DType) -> Result<(), String> {
    if dtype.is_float() {
        Ok(())
    } else {
        Err(format!("convolution of {dtype}"))
    }
}

/// The geometry of `conv` (the op, or a fused op's conv part) over `x` and `w`, producing
/// `out_sp` spatial outputs.
pub(crate) fn conv_geometry(
    conv: &Op,
    x: &Operand,
    w: &Operand,
    out_sp: &[usize],
) -> Result<ConvGeometry, String> {
    let Op::Conv {
        strides,
        pads,
        dilations,
        group,
        auto_pad,
    } = conv
    else {
        return Err("not a convolution".into());
    };
    float_dtype(x.dtype)?;
    if x.rank() < 3 || w.rank() != x.rank() || out_sp.len() + 2 != x.rank() {
        return Err("conv needs x and w of equal rank >= 3".into());
    }
    let n_sp = x.rank() - 2;
    let (n_batch, n_in) = (x.shape[0], x.shape[1]);
    let n_out = w.shape[0];
    let group = usize::try_from(*group)
        .ok()
        .filter(|&g| g >= 1)
        .ok_or("group < 1")?;
    if !n_in.is_multiple_of(group) || !n_out.is_multiple_of(group) || w.shape[1] != n_in / group {
        return Err(format!(
            "w {:?} does not fit x {:?} with group {group}",
            w.shape, x.shape
        ));
    }
    let (cg, mg) = (n_in / group, n_out / group);
    let kernel = w.shape[2..].to_vec();
    let in_sp = &x.shape[2..];
    let stride = per_axis_or_ones("strides", strides, n_sp)?;
    let dilation = per_axis_or_ones("dilations", dilations, n_sp)?;
    let extent: Vec<usize> = (0..n_sp)
        .map(|a| dilated_extent(kernel[a], dilation[a]))
        .collect();
    let (begin, end) = resolve_pads(*auto_pad, pads, in_sp, &stride, &extent)?;
    let padded: Vec<usize> = (0..n_sp)
        .map(|a| {
            let needed = if out_sp[a] == 0 {
                0
            } else {
                (out_sp[a] - 1) * stride[a] + extent[a]
            };
            (in_sp[a] + begin[a] + end[a]).max(needed)
        })
        .collect();
    let needs_pad = (0..n_sp).any(|a| padded[a] != in_sp[a] || begin[a] != 0);
    Ok(ConvGeometry {
        n_batch,
        group,
        cg,
        mg,
        kernel,
        out_sp: out_sp.to_vec(),
        stride,
        dilation,
        begin,
        padded,
        needs_pad,
    })
}

/// conv, or fused_conv's conv with its `own` epilogue steps (residual add, activation).
fn lower_conv(lw: &mut Lowerer, cx: &NodeCx, conv: &Op, own: &[OwnStep]) -> Result<(), String> {
    let (x, w) = (cx.input(0)?, cx.input(1)?);
    let bias = cx.optional_input(2);
    let out = cx.output(0);
    let geometry = conv_geometry(conv, x, w, &out.shape[2..])?;
    let ConvGeometry {
        n_batch,
        group,
        cg,
        mg,
        ref kernel,
        ref out_sp,
        ref stride,
        ref dilation,
        ref begin,
        ref padded,
        ..
    } = geometry;
    let n_sp = kernel.len();
    if x.dtype == DType::F32 && geometry.suits_tiles() {
        return lower_conv_tiled(lw, cx, &geometry, own);
    }

    let epilogue = lw.fused_epilogue(cx, 0, &out.shape, own, false)?;
    let mut k = lw.kernel(&cx.stem, &[&cx.node]);
    let xb = k.input(x);
    let wb = k.input(w);
    let bb = bias.map(|b| k.input(b));
    let y = k.sink(out, epilogue);
    let dtype = x.dtype;
    let (src, src_shape) = padded_source(
        &mut k,
        PaddedCopy {
            x: xb,
            x_shape: &x.shape,
            n_lead: 2,
            begin,
            padded,
            fill: cst(dtype, 0.0),
            dtype,
        },
    );
    let src_strides = row_major_strides(&src_shape);
    let w_strides = row_major_strides(&w.shape);
    let y_strides = row_major_strides(&out.shape);
    let mut outer = vec![n_batch, group, mg];
    outer.extend_from_slice(out_sp);
    let mut inner = vec![cg];
    inner.extend_from_slice(kernel);
    k.kb.loops(&outer, |kb, ov| {
        let (nv, gv, mv, osv) = (ov[0], ov[1], ov[2], &ov[3..]);
        let init = match bb {
            Some(b) => Expr::load(b, Index::affine([(gv, mg as i64), (mv, 1)], 0)),
            None => cst(dtype, 0.0),
        };
        let acc = kb.local(dtype, init);
        kb.loops(&inner, |kb, iv| {
            let (cv, kv) = (iv[0], &iv[1..]);
            let mut x_terms = vec![
                (nv, src_strides[0]),
                (gv, cg as i64 * src_strides[1]),
                (cv, src_strides[1]),
            ];
            for a in 0..n_sp {
                x_terms.push((osv[a], stride[a] as i64 * src_strides[2 + a]));
                x_terms.push((kv[a], dilation[a] as i64 * src_strides[2 + a]));
            }
            let xv = Expr::load(src, Index::affine(x_terms, 0));
            let wv = Expr::load(wb, weight_index(&w_strides, mg, [gv, mv, cv], kv));
            kb.assign(acc, Expr::fma(xv, wv, Expr::Local(acc)));
        });
        let mut y_terms = vec![
            (nv, y_strides[0]),
            (gv, mg as i64 * y_strides[1]),
            (mv, y_strides[1]),
        ];
        let mut coords = vec![Index::var(nv), Index::affine([(gv, mg as i64), (mv, 1)], 0)];
        for a in 0..n_sp {
            y_terms.push((osv[a], y_strides[2 + a]));
            coords.push(Index::var(osv[a]));
        }
        y.store(kb, Index::affine(y_terms, 0), Expr::Local(acc), &coords);
    });
    lw.emit(k);
    Ok(())
}

/// The weight of group `gv`, output channel `mv` of the group, input channel `cv` of the group and
/// kernel taps `kv`, in `w` of row-major `w_strides` (`mg` output channels per group).
pub(crate) fn weight_index(
    w_strides: &[i64],
    mg: usize,
    [gv, mv, cv]: [LoopVar; 3],
    kv: &[LoopVar],
) -> Index {
    let mut terms = vec![
        (gv, mg as i64 * w_strides[0]),
        (mv, w_strides[0]),
        (cv, w_strides[1]),
    ];
    for (a, &k) in kv.iter().enumerate() {
        terms.push((k, w_strides[2 + a]));
    }
    Index::affine(terms, 0)
}

/// The shape facts of one convolution, resolved (pads, strides, dilations per spatial axis).
pub(crate) struct ConvGeometry {
    pub n_batch: usize,
    pub group: usize,
    /// Input and output channels per group.
    pub cg: usize,
    pub mg: usize,
    pub kernel: Vec<usize>,
    pub out_sp: Vec<usize>,
    pub stride: Vec<usize>,
    pub dilation: Vec<usize>,
    /// The begin pads.
    pub begin: Vec<usize>,
    /// The padded input's spatial extents.
    pub padded: Vec<usize>,
    pub needs_pad: bool,
}

/// The most f32 elements the im2col matrix of a tiled convolution may have (256 MiB); larger
/// convolutions keep the direct nest rather than allocate that much.
const MAX_IM2COL_ELEMENTS: usize = 64 << 20;

impl ConvGeometry {
    /// The depth of each output's dot product: input channels per group times the window.
    pub fn depth(&self) -> usize {
        self.cg * self.kernel.iter().product::<usize>()
    }

    fn positions(&self) -> usize {
        self.out_sp.iter().product()
    }

    /// A 1x1 convolution with unit strides and no padding multiplies by `x` itself.
    fn is_pointwise(&self) -> bool {
        !self.needs_pad
            && self.kernel.iter().all(|&k| k == 1)
            && self.stride.iter().all(|&s| s == 1)
    }

    /// Whether the convolution is a real matrix product: not depthwise (one channel in and out
    /// per group, where a tile would have one row and the direct nest is as good), with enough
    /// work to pay for the im2col copy, and a copy of reasonable size.
    pub fn suits_tiles(&self) -> bool {
        let depthwise = self.cg == 1 && self.mg == 1;
        let work = self.mg * self.depth() * self.positions();
        let im2col = self.n_batch * self.group * self.depth() * self.positions();
        !depthwise && work >= 4096 && (self.is_pointwise() || im2col <= MAX_IM2COL_ELEMENTS)
    }
}

/// A convolution as implicit GEMM: per image and group, `y[m, p] = Σ_kk w[m, kk] col[kk, p]` where
/// `p` runs over output positions and `kk` over (input channel, window position). `col` is the
/// im2col matrix, built by one kernel (after padding into scratch when needed), unless the
/// convolution is pointwise and `x` already is that matrix. The weights are read in place (a tile
/// broadcasts one weight per row and step of `kk`); the bias is the tiles' epilogue.
fn lower_conv_tiled(
    lw: &mut Lowerer,
    cx: &NodeCx,
    g: &ConvGeometry,
    own: &[OwnStep],
) -> Result<(), String> {
    let (x, w) = (cx.input(0)?, cx.input(1)?);
    let bias = cx.optional_input(2);
    let out = cx.output(0);
    let (depth, positions) = (g.depth(), g.positions());
    let n_sp = g.kernel.len();
    let x_image = (x.shape[1] * x.shape[2..].iter().product::<usize>()) as i64;
    // The matrix `b` of image n and group gi: its base index and row stride.
    let (b_operand, b_image, b_group, b_row) = if g.is_pointwise() {
        (
            x.clone(),
            x_image,
            (g.cg * positions) as i64,
            positions as i64,
        )
    } else {
        let col = lw.computed(
            format!("{}.im2col", out.name),
            DType::F32,
            vec![g.n_batch * g.group * depth * positions],
        );
        let mut kd = lw.kernel(&format!("{}_im2col", cx.stem), &[&cx.node]);
        let xb = kd.input(x);
        let colb = kd.output(&col);
        let (src, src_shape) = padded_source(
            &mut kd,
            PaddedCopy {
                x: xb,
                x_shape: &x.shape,
                n_lead: 2,
                begin: &g.begin,
                padded: &g.padded,
                fill: cst(DType::F32, 0.0),
                dtype: DType::F32,
            },
        );
        let src_strides = row_major_strides(&src_shape);
        let mut extents = vec![g.n_batch, g.group, g.cg];
        extents.extend_from_slice(&g.kernel);
        extents.extend_from_slice(&g.out_sp);
        let mut row_dims = vec![g.cg];
        row_dims.extend_from_slice(&g.kernel);
        let row_strides = row_major_strides(&row_dims);
        let pos_strides = row_major_strides(&g.out_sp);
        kd.kb.loops(&extents, |kb, v| {
            let (nv, gv, cv) = (v[0], v[1], v[2]);
            let (kv, ov) = (&v[3..3 + n_sp], &v[3 + n_sp..]);
            let matrix = (depth * positions) as i64;
            let mut dst = vec![
                (nv, g.group as i64 * matrix),
                (gv, matrix),
                (cv, row_strides[0] * positions as i64),
            ];
            let mut src_terms = vec![
                (nv, src_strides[0]),
                (gv, g.cg as i64 * src_strides[1]),
                (cv, src_strides[1]),
            ];
            for a in 0..n_sp {
                dst.push((kv[a], row_strides[1 + a] * positions as i64));
                dst.push((ov[a], pos_strides[a]));
                src_terms.push((kv[a], (g.dilation[a] as i64) * src_strides[2 + a]));
                src_terms.push((ov[a], (g.stride[a] as i64) * src_strides[2 + a]));
            }
            kb.store(
                colb,
                Index::affine(dst, 0),
                Expr::load(src, Index::affine(src_terms, 0)),
            );
        });
        lw.emit(kd);
        let matrix = (depth * positions) as i64;
        (col, g.group as i64 * matrix, matrix, positions as i64)
    };
    let w_group = (g.mg * depth) as i64;
    let y_image = (out.shape[1] * positions) as i64;
    let y_group = (g.mg * positions) as i64;
    // An elementwise chain on the output (activation, residual add) joins the tiles' epilogue.
    let view = [g.n_batch, out.shape[1], positions];
    let chain = lw.fused_epilogue(cx, 0, &view, own, true)?;
    // One image and group is one product; more of them make the outer loops (run in parallel).
    for (stem, columns) in kernel_parts(&cx.stem, g.n_batch * g.group, positions) {
        let mut kd = lw.kernel(&stem, &[&cx.node]);
        let wb = kd.input(w);
        let bb = kd.input(&b_operand);
        let biasb = bias.map(|b| kd.input(b));
        let y = kd.sink(out, chain.clone());
        if !y.is_expression() {
            return Err("the fused elementwise chain does not fit a tile epilogue".into());
        }
        let yb = y.buf;
        let mg = g.mg as i64;
        kd.kb.loops(&[g.n_batch, g.group], |kb, v| {
            let (nv, gv) = (v[0], v[1]);
            let epilogue = |_: &mut KernelBuilder, acc: Expr, mi: &Index, ni: &Index| {
                let channel = Index::affine([(gv, mg)], 0).plus(mi.clone());
                let value = match biasb {
                    Some(b) => Expr::add(acc, Expr::load(b, channel.clone())),
                    None => acc,
                };
                y.expression(value, &[Index::var(nv), channel, ni.clone()])
            };
            let nest = TileNest {
                m: g.mg,
                n: positions,
                k: depth,
                a: wb,
                a_base: Index::affine([(gv, w_group)], 0),
                a_m: depth as i64,
                a_k: 1,
                b: bb,
                b_base: Index::affine([(nv, b_image), (gv, b_group)], 0),
                b_layout: BLayout::Rows { row: b_row },
                c: yb,
                c_base: Index::affine([(nv, y_image), (gv, y_group)], 0),
                c_m: positions as i64,
                epilogue: (biasb.is_some() || chain.is_some())
                    .then_some(&epilogue as &TileEpilogueFn),
            };
            emit_tiles(kb, &nest, columns);
        });
        lw.emit(kd);
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn lower_conv_transpose(
    lw: &mut Lowerer,
    cx: &NodeCx,
    strides: &[i64],
    pads: &[i64],
    dilations: &[i64],
    group: i64,
    auto_pad: AutoPad,
    output_padding: &[i64],
) -> Result<(), String> {
    let (x, w) = (cx.input(0)?, cx.input(1)?);
    let bias = cx.optional_input(2);
    let out: &Operand = cx.output(0);
    float_dtype(x.dtype)?;
    if x.rank() < 3 || w.rank() != x.rank() {
        return Err("conv_transpose needs x and w of equal rank >= 3".into());
    }
    let Op::ConvTranspose { output_shape, .. } = cx.op else {
        return Err("not conv_transpose".into());
    };
    let n_sp = x.rank() - 2;
    let (n_batch, n_in) = (x.shape[0], x.shape[1]);
    let group = usize::try_from(group)
        .ok()
        .filter(|&g| g >= 1)
        .ok_or("group < 1")?;
    if w.shape[0] != n_in || n_in % group != 0 {
        return Err(format!("w {:?} does not fit x {:?}", w.shape, x.shape));
    }
    let (cg, mg) = (n_in / group, w.shape[1]);
    let n_out = mg * group;
    let kernel = &w.shape[2..];
    let in_sp = &x.shape[2..];
    let out_sp = &out.shape[2..];
    let stride = per_axis_or_ones("strides", strides, n_sp)?;
    let dilation = per_axis_or_ones("dilations", dilations, n_sp)?;
    let extra: Vec<i64> = if output_padding.is_empty() {
        vec![0; n_sp]
    } else {
        output_padding.to_vec()
    };
    let full: Vec<i64> = (0..n_sp)
        .map(|a| {
            stride[a] as i64 * (in_sp[a] as i64 - 1).max(0)
                + extra[a]
                + ((kernel[a].max(1) - 1) * dilation[a] + 1) as i64
        })
        .collect();
    // The begin pad per axis (negative when the output extends before the full result).
    let begin: Vec<i64> = if !output_shape.is_empty()
        || matches!(auto_pad, AutoPad::SameUpper | AutoPad::SameLower)
    {
        (0..n_sp)
            .map(|a| {
                let total = full[a] - out_sp[a] as i64;
                match auto_pad {
                    AutoPad::SameUpper => total.div_euclid(2),
                    AutoPad::SameLower => total - total.div_euclid(2),
                    _ => (total - total / 2).max(0),
                }
            })
            .collect()
    } else {
        match auto_pad {
            AutoPad::Valid => vec![0; n_sp],
            _ if pads.is_empty() => vec![0; n_sp],
            _ if pads.len() == 2 * n_sp => pads[..n_sp].to_vec(),
            _ => return Err(format!("`pads` {pads:?} needs {} entries", 2 * n_sp)),
        }
    };
    // The scratch axis covers [lo, hi) of full-result coordinates: the full result and the output.
    let lo: Vec<i64> = (0..n_sp).map(|a| begin[a].min(0)).collect();
    let hi: Vec<i64> = (0..n_sp)
        .map(|a| full[a].max(begin[a] + out_sp[a] as i64))
        .collect();
    let mut scratch_shape = vec![n_batch, n_out];
    scratch_shape.extend((0..n_sp).map(|a| (hi[a] - lo[a]) as usize));

    let dtype = x.dtype;
    let mut k = lw.kernel(&cx.stem, &[&cx.node]);
    let xb = k.input(x);
    let wb = k.input(w);
    let bb = bias.map(|b| k.input(b));
    let yb = k.output(out);
    let acc = k.scratch("full", dtype, &scratch_shape);
    let total: usize = scratch_shape.iter().product();
    k.kb.loop_(total, |kb, i| kb.store(acc, Index::var(i), cst(dtype, 0.0)));
    let s_strides = row_major_strides(&scratch_shape);
    let x_strides = row_major_strides(&x.shape);
    let w_strides = row_major_strides(&w.shape);
    let y_strides = row_major_strides(&out.shape);
    let mut extents = vec![n_batch, group, cg];
    extents.extend_from_slice(in_sp);
    extents.push(mg);
    extents.extend_from_slice(kernel);
    let scatter_offset: i64 = (0..n_sp).map(|a| -lo[a] * s_strides[2 + a]).sum();
    k.kb.loops(&extents, |kb, v| {
        let (nv, gv, cv) = (v[0], v[1], v[2]);
        let isv = &v[3..3 + n_sp];
        let mv = v[3 + n_sp];
        let kv = &v[4 + n_sp..];
        let mut x_terms = vec![
            (nv, x_strides[0]),
            (gv, cg as i64 * x_strides[1]),
            (cv, x_strides[1]),
        ];
        let mut w_terms = vec![
            (gv, cg as i64 * w_strides[0]),
            (cv, w_strides[0]),
            (mv, w_strides[1]),
        ];
        let mut s_terms = vec![
            (nv, s_strides[0]),
            (gv, mg as i64 * s_strides[1]),
            (mv, s_strides[1]),
        ];
        for a in 0..n_sp {
            x_terms.push((isv[a], x_strides[2 + a]));
            w_terms.push((kv[a], w_strides[2 + a]));
            s_terms.push((isv[a], stride[a] as i64 * s_strides[2 + a]));
            s_terms.push((kv[a], dilation[a] as i64 * s_strides[2 + a]));
        }
        let s_idx = Index::affine(s_terms, scatter_offset);
        let prod = Expr::fma(
            Expr::load(xb, Index::affine(x_terms, 0)),
            Expr::load(wb, Index::affine(w_terms, 0)),
            Expr::load(acc, s_idx.clone()),
        );
        kb.store(acc, s_idx, prod);
    });
    let read_offset: i64 = (0..n_sp)
        .map(|a| (begin[a] - lo[a]) * s_strides[2 + a])
        .sum();
    k.kb.loops(&out.shape, |kb, v| {
        let value = Expr::load(acc, Index::strided(v, &s_strides, read_offset));
        let value = match bb {
            Some(b) => Expr::add(value, Expr::load(b, Index::var(v[1]))),
            None => value,
        };
        kb.store(yb, Index::strided(v, &y_strides, 0), value);
    });
    lw.emit(k);
    Ok(())
}
