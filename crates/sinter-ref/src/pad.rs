//! Reference `pad`: constant, reflect, edge and wrap modes for any dtype, with negative pads cropping.
//!
//! Each axis is resolved independently to a map from output coordinate to input coordinate (or to the
//! fill value), and the output gathers through those maps, so no mode needs intermediate tensors.
//!
//! Negative pads crop first and the remaining positive pads then extend the cropped tensor, as
//! onnxruntime does (`onnx.reference` rejects negative pads). Reflect and wrap pads larger than the
//! axis repeat periodically like numpy's `np.pad`, which `onnx.reference` uses (onnxruntime rejects
//! them); reflect of a single element repeats it. Edge, reflect and wrap need a non-empty axis to
//! extend. The constant `value` must be a value of the dtype (ONNX passes it as a tensor of it: whole
//! and in range for integers, 0 or 1 for bool) and is converted with `Elem::from_f64`.

use crate::index::{
    check_attr_sizes, checked_len, for_each_index, required_input, strides, value_fits,
};
use crate::{op_err, OpError};
use sinter_ir::geometry::pad_source;
use sinter_ir::{with_data, Elem, Op, PadMode, Tensor, TensorData};

pub fn eval(op: &Op, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
    let Op::Pad { pads, mode, value } = op else {
        return op_err(format!("`{}` is not pad", op.name()));
    };
    let x = required_input(op, inputs, 0)?;
    let rank = x.rank();
    check_attr_sizes(op, "pads", pads)?;
    if pads.len() != 2 * rank {
        return op_err(format!(
            "`pad` needs {} pads ([begins.., ends..]) for rank {rank}, got {pads:?}",
            2 * rank
        ));
    }
    if *mode == PadMode::Constant && !value_fits(*value, x.dtype()) {
        return op_err(format!(
            "`pad` value {value} is not a value of {}",
            x.dtype()
        ));
    }
    let axis_pads = (0..rank)
        .map(|axis| axis_pad(x.shape()[axis], pads[axis], pads[axis + rank], *mode, axis))
        .collect::<Result<Vec<_>, _>>()?;
    let out_shape: Vec<usize> = axis_pads.iter().map(AxisPad::out_len).collect();
    // The size is checked before any per-axis map is built: an empty output may still have one huge
    // axis.
    let n_elements = checked_len(op, &out_shape)?;
    if n_elements == 0 {
        return Ok(vec![Tensor::zeros(x.dtype(), out_shape)]);
    }
    let axis_maps: Vec<Vec<Option<usize>>> = axis_pads
        .iter()
        .map(|axis| axis.source_map(*mode))
        .collect();
    let in_strides = strides(x.shape());
    // For each output element, the flat input index it copies, or None for the fill value.
    let mut sources = Vec::with_capacity(n_elements);
    for_each_index(&out_shape, |o| {
        let mut flat = 0;
        for (axis, &coord) in o.iter().enumerate() {
            match axis_maps[axis][coord] {
                Some(src) => flat += src * in_strides[axis],
                None => {
                    sources.push(None);
                    return;
                }
            }
        }
        sources.push(Some(flat));
    });
    let data = with_data!(x.data(), v => gather_or_fill(v, &sources, *value));
    let y = Tensor::new(out_shape, data)
        .map_err(|e| OpError(format!("internal error in `pad`: {e}")))?;
    Ok(vec![y])
}

fn gather_or_fill<T: Elem>(src: &[T], sources: &[Option<usize>], value: f64) -> TensorData {
    let fill = T::from_f64(value);
    T::wrap(
        sources
            .iter()
            .map(|s| s.map_or(fill, |idx| src[idx]))
            .collect(),
    )
}

/// One axis's validated pads: `crop_begin` elements dropped, `kept` elements kept, then `grow_begin`
/// and `grow_end` positions added.
struct AxisPad {
    crop_begin: usize,
    kept: usize,
    grow_begin: usize,
    grow_end: usize,
}

fn axis_pad(
    in_size: usize,
    begin: i64,
    end: i64,
    mode: PadMode,
    axis: usize,
) -> Result<AxisPad, OpError> {
    let crop_begin = (-begin).max(0) as usize;
    let crop_end = (-end).max(0) as usize;
    let Some(kept) = in_size.checked_sub(crop_begin + crop_end) else {
        return op_err(format!(
            "`pad` axis {axis}: negative pads ({begin}, {end}) remove more than its {in_size} elements"
        ));
    };
    let grow_begin = begin.max(0) as usize;
    let grow_end = end.max(0) as usize;
    if kept == 0 && grow_begin + grow_end > 0 && mode != PadMode::Constant {
        return op_err(format!(
            "`pad` in {} mode cannot extend axis {axis}, which is empty after cropping",
            mode.name()
        ));
    }
    Ok(AxisPad {
        crop_begin,
        kept,
        grow_begin,
        grow_end,
    })
}

impl AxisPad {
    fn out_len(&self) -> usize {
        self.kept + self.grow_begin + self.grow_end
    }

    /// The input coordinate of every output coordinate along the axis (`None` = fill value).
    fn source_map(&self, mode: PadMode) -> Vec<Option<usize>> {
        let n = self.kept as i64;
        (0..self.out_len())
            .map(|out_idx| {
                let source = pad_source(mode, out_idx as i64 - self.grow_begin as i64, n);
                source.map(|s| self.crop_begin + s as usize)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::f32s;

    fn pad(x: &Tensor, pads: &[i64], mode: PadMode, value: f64) -> Result<Tensor, OpError> {
        let op = Op::Pad {
            pads: pads.to_vec(),
            mode,
            value,
        };
        eval(&op, &[Some(x)]).map(|mut v| v.remove(0))
    }

    #[test]
    fn every_mode_in_one_dimension() {
        let x = Tensor::from_vec(vec![3], vec![1.0f32, 2.0, 3.0]).unwrap();
        let cases: [(PadMode, &[f32]); 4] = [
            (PadMode::Constant, &[9.0, 9.0, 1.0, 2.0, 3.0, 9.0]),
            (PadMode::Edge, &[1.0, 1.0, 1.0, 2.0, 3.0, 3.0]),
            (PadMode::Reflect, &[3.0, 2.0, 1.0, 2.0, 3.0, 2.0]),
            (PadMode::Wrap, &[2.0, 3.0, 1.0, 2.0, 3.0, 1.0]),
        ];
        for (mode, expected) in cases {
            assert_eq!(
                f32s(&pad(&x, &[2, 1], mode, 9.0).unwrap()),
                expected,
                "{mode:?}"
            );
        }
    }

    /// numpy's periodic extension, as onnx.reference computes it.
    #[test]
    fn large_reflect_and_wrap_pads_repeat() {
        let x = Tensor::from_vec(vec![3], vec![1.0f32, 2.0, 3.0]).unwrap();
        let y = pad(&x, &[5, 4], PadMode::Reflect, 0.0).unwrap();
        assert_eq!(
            f32s(&y),
            [2.0, 1.0, 2.0, 3.0, 2.0, 1.0, 2.0, 3.0, 2.0, 1.0, 2.0, 3.0]
        );
        let y = pad(&x, &[5, 4], PadMode::Wrap, 0.0).unwrap();
        assert_eq!(
            f32s(&y),
            [2.0, 3.0, 1.0, 2.0, 3.0, 1.0, 2.0, 3.0, 1.0, 2.0, 3.0, 1.0]
        );
        let one = Tensor::from_vec(vec![1], vec![7.0f32]).unwrap();
        assert_eq!(
            f32s(&pad(&one, &[2, 1], PadMode::Reflect, 0.0).unwrap()),
            [7.0; 4]
        );
    }

    /// Checked against onnxruntime 1.31: crop first, then pad what is left.
    #[test]
    fn negative_pads_crop_before_padding() {
        let x = Tensor::from_vec(vec![3], vec![1.0f32, 2.0, 3.0]).unwrap();
        assert_eq!(
            f32s(&pad(&x, &[-1, 3], PadMode::Wrap, 0.0).unwrap()),
            [2.0, 3.0, 2.0, 3.0, 2.0]
        );
        assert_eq!(
            f32s(&pad(&x, &[-1, 3], PadMode::Edge, 0.0).unwrap()),
            [2.0, 3.0, 3.0, 3.0, 3.0]
        );
        assert_eq!(
            f32s(&pad(&x, &[-2, 2], PadMode::Edge, 0.0).unwrap()),
            [3.0, 3.0, 3.0]
        );
        assert_eq!(
            f32s(&pad(&x, &[1, -2], PadMode::Constant, 5.0).unwrap()),
            [5.0, 1.0]
        );
        assert_eq!(
            pad(&x, &[-3, 0], PadMode::Constant, 0.0).unwrap().shape(),
            &[0]
        );
        assert!(pad(&x, &[-2, -2], PadMode::Constant, 0.0).is_err());
        assert!(pad(&x, &[-3, 1], PadMode::Edge, 0.0).is_err());
    }

    #[test]
    fn two_dimensional_and_non_float_dtypes() {
        let x = Tensor::from_vec(vec![2, 2], vec![1i64, 2, 3, 4]).unwrap();
        let y = pad(&x, &[1, 0, 0, 1], PadMode::Constant, -1.0).unwrap();
        assert_eq!(y.shape(), &[3, 3]);
        assert_eq!(
            y.as_slice::<i64>().unwrap(),
            [-1, -1, -1, 1, 2, -1, 3, 4, -1]
        );
        let y = pad(&x, &[1, 1, 1, 1], PadMode::Reflect, 0.0).unwrap();
        assert_eq!(
            y.as_slice::<i64>().unwrap(),
            [4, 3, 4, 3, 2, 1, 2, 1, 4, 3, 4, 3, 2, 1, 2, 1]
        );
        let b = Tensor::from_vec(vec![2], vec![true, false]).unwrap();
        let y = pad(&b, &[0, 2], PadMode::Edge, 0.0).unwrap();
        assert_eq!(y.as_slice::<bool>().unwrap(), [true, false, false, false]);
        assert!(
            pad(&x, &[1, 1], PadMode::Constant, 0.0).is_err(),
            "rank 2 needs 4 pads"
        );
    }

    #[test]
    fn absurd_pads_are_errors_not_panics() {
        let x = Tensor::from_vec(vec![2], vec![1.0f32, 2.0]).unwrap();
        assert!(pad(&x, &[i64::MIN, 0], PadMode::Constant, 0.0).is_err());
        assert!(pad(&x, &[0, 1 << 40], PadMode::Edge, 0.0).is_err());
        // An empty result is returned without building a map for its (large) other axis.
        let empty = Tensor::from_vec(vec![0, 1], Vec::<f32>::new()).unwrap();
        let y = pad(&empty, &[0, 0, 0, 1 << 31], PadMode::Constant, 0.0).unwrap();
        assert_eq!(y.shape(), &[0, (1 << 31) + 1]);
    }

    #[test]
    fn constant_value_must_be_a_value_of_the_dtype() {
        let x = Tensor::from_vec(vec![2], vec![1i32, 2]).unwrap();
        let message = pad(&x, &[1, 0], PadMode::Constant, 0.5).unwrap_err().0;
        assert!(message.contains("not a value of i32"), "{message}");
        assert!(pad(&x, &[1, 0], PadMode::Constant, 3e9).is_err());
        let b = Tensor::from_vec(vec![1], vec![true]).unwrap();
        assert!(pad(&b, &[1, 0], PadMode::Constant, 2.0).is_err());
        // Other modes do not use the value.
        assert_eq!(
            pad(&x, &[1, 0], PadMode::Edge, 0.5).unwrap(),
            Tensor::from_vec(vec![3], vec![1i32, 1, 2]).unwrap()
        );
    }
}
