//! tract, the same-process peer of the `jit` bench: every model and conv layer sinter is timed on is
//! also loaded, checked and timed with tract-onnx, so each sinter figure is read as a ratio to tract.
//!
//! **One thread.** tract parallelises its matrix products only when `tract-linalg`'s
//! `multithread-mm` feature is on and an executor is set; this bench does not enable the feature, and
//! [`TractModel`] also pins [`Executor::SingleThread`] in its run options, so tract runs on the
//! calling thread even if another crate in the build turned the feature on.
//!
//! Loading follows tract's documented path: `onnx().model_for_*`, every input fact fixed to the
//! concrete type and shape it will run with, `into_optimized()`, then a runnable plan. The one
//! departure: the file's `value_info` annotations are ignored (see [`TractModel::load`]).

use sinter_ir::{with_data, DType, Tensor};
use std::path::Path;
use tract_onnx::prelude::{
    multithread::Executor, DatumType, Framework, InferenceFact, InferenceModelExt, IntoTValue,
    RunOptions, TValue, TVec, Tensor as TractTensor, TypedRunnableModel,
};
use tract_onnx::tract_hir::prelude::Arc;

/// A tract plan ready to run, with the inputs it was specialised for.
pub struct TractModel {
    plan: Arc<TypedRunnableModel>,
    inputs: Vec<TractTensor>,
}

/// Where the ONNX model comes from.
pub enum Source<'a> {
    Path(&'a Path),
    Bytes(&'a [u8]),
}

impl TractModel {
    /// Loads `source`, fixes its inputs (positionally, the graph inputs that are not initializers)
    /// to the types and shapes of `inputs`, optimises it, and keeps `inputs` for [`TractModel::run`].
    pub fn load(source: Source<'_>, inputs: &[Tensor]) -> Result<TractModel, String> {
        // `value_info` shapes are hints, and torch.export's files annotate intermediates with the
        // symbolic `batch` that tract then cannot unify with the concrete input facts set below; the
        // shapes are inferred from those facts instead.
        let onnx = tract_onnx::onnx().with_ignore_value_info(true);
        let mut model = match source {
            Source::Path(path) => onnx.model_for_path(path),
            Source::Bytes(mut bytes) => onnx.model_for_read(&mut bytes),
        }
        .map_err(|err| format!("tract load: {err:#}"))?;
        let inputs = inputs
            .iter()
            .map(to_tract)
            .collect::<Result<Vec<_>, String>>()?;
        for (idx, input) in inputs.iter().enumerate() {
            let fact = InferenceFact::dt_shape(input.datum_type(), input.shape());
            model = model
                .with_input_fact(idx, fact)
                .map_err(|err| format!("tract input {idx}: {err:#}"))?;
        }
        let options = RunOptions {
            executor: Some(Executor::SingleThread),
            ..RunOptions::default()
        };
        let plan = model
            .into_optimized()
            .map_err(|err| format!("tract optimize: {err:#}"))?
            .into_runnable_with_options(&options)
            .map_err(|err| format!("tract plan: {err:#}"))?;
        Ok(TractModel { plan, inputs })
    }

    /// One run on the inputs given at load, with the outputs as sinter tensors.
    pub fn run(&self) -> Result<Vec<Tensor>, String> {
        self.run_raw()?
            .iter()
            .map(|value| from_tract(value))
            .collect()
    }

    /// One run, the outputs left as tract values (what is timed: converting them is not tract's cost).
    pub fn run_raw(&self) -> Result<TVec<TValue>, String> {
        let inputs: TVec<TValue> = self
            .inputs
            .iter()
            .map(|tensor| tensor.clone().into_tvalue())
            .collect();
        self.plan
            .run(inputs)
            .map_err(|err| format!("tract run: {err:#}"))
    }
}

/// Copies a sinter tensor into a tract tensor of the same element type and shape.
pub fn to_tract(tensor: &Tensor) -> Result<TractTensor, String> {
    with_data!(tensor.data(), data => TractTensor::from_shape(tensor.shape(), &data[..]))
        .map_err(|err| format!("to tract: {err:#}"))
}

/// Copies a tract tensor (in logical order, whatever its strides) into a sinter tensor.
pub fn from_tract(tensor: &TractTensor) -> Result<Tensor, String> {
    fn copy<T: tract_onnx::prelude::Datum + sinter_ir::Elem>(
        tensor: &TractTensor,
    ) -> Result<Tensor, String> {
        let view = tensor
            .to_plain_array_view::<T>()
            .map_err(|err| format!("from tract: {err:#}"))?;
        Tensor::from_vec(view.shape().to_vec(), view.iter().copied().collect())
            .map_err(|err| format!("from tract: {err}"))
    }
    match tensor.datum_type() {
        DatumType::F32 => copy::<f32>(tensor),
        DatumType::F64 => copy::<f64>(tensor),
        DatumType::I64 => copy::<i64>(tensor),
        DatumType::I32 => copy::<i32>(tensor),
        DatumType::I8 => copy::<i8>(tensor),
        DatumType::U8 => copy::<u8>(tensor),
        DatumType::Bool => copy::<bool>(tensor),
        other => Err(format!(
            "tract output of type {other:?} has no sinter dtype (sinter has {:?})",
            DType::ALL
        )),
    }
}
