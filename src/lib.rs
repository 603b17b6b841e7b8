//! `sinter`: a model compiler for neural networks on the CPU.
//!
//! This facade crate re-exports the stages, so a user depends on one crate:
//!
//! - [`ir`] (`sinter-ir`): the typed graph IR every stage reads and writes: dtypes, shapes with
//!   named symbolic dims, the op set, the graph, shape inference, the verifier and the `.sir` text
//!   format.
//! - [`dsl`] (`sinter-dsl`): build graphs from Rust with chained tensor methods
//!   (`x.conv2d(&w, opts).relu().max_pool2d(2, 2)`) and `nn` layer helpers. Shape errors are
//!   collected while building and returned together by `build()`.
//! - [`reference`](mod@reference) (`sinter-ref`): a naive, obviously correct interpreter of every op; the oracle
//!   the importer, optimizer and JIT are tested against.
//! - [`loops`] (`sinter-loops`): the loop-nest IR every op is lowered to, its verifier, text form and
//!   schedule transforms.
//! - [`jit`] (`sinter-jit`): Cranelift code generation and the runtime; [`compile`] turns a graph
//!   into a [`CompiledModel`] that runs from any number of threads.
//!
//! A tour: build a small classifier, print it, run it on the reference interpreter and the JIT.
//!
//! ```
//! use sinter::dsl::{shape, DType, GraphBuilder};
//! use sinter::ir::Tensor;
//!
//! // probs = softmax(x @ w + b) over rows of 3 features; `batch` is bound when the graph runs.
//! let b = GraphBuilder::new("classifier");
//! let x = b.input("x", DType::F32, shape![batch, 3]);
//! let w = b.constant("w", Tensor::from_vec(vec![3, 2], vec![1.0f32, -1.0, 0.5, 0.5, 0.0, 2.0])?);
//! let bias = b.constant("b", Tensor::from_vec(vec![2], vec![0.0f32, 0.1])?);
//! let probs = (x.matmul(&w) + &bias).softmax(-1).named("probs");
//! b.output("probs", &probs);
//! let graph = b.build()?;
//!
//! // The `.sir` text of the graph: typed values, weights inline, node labels as `loc(..)`.
//! let text = graph.to_string();
//! assert!(text.contains("softmax"));
//!
//! let input = Tensor::from_vec(vec![2, 3], vec![1.0f32, 2.0, 3.0, -1.0, 0.0, 1.0])?;
//! let outputs = sinter::reference::run(&graph, &[("x", input)])?;
//! let (name, probs) = &outputs[0];
//! assert_eq!((name.as_str(), probs.shape()), ("probs", &[2, 2][..]));
//! let probs = probs.as_slice::<f32>().ok_or("f32 output")?;
//! for row in probs.chunks(2) {
//!     assert!((row[0] + row[1] - 1.0).abs() < 1e-6);
//! }
//!
//! // The same graph compiled to native code; `batch` is specialised (and cached) per input shape.
//! let model = sinter::compile(graph, &sinter::CompileOptions::default())?;
//! let x = Tensor::from_vec(vec![2, 3], vec![1.0f32, 2.0, 3.0, -1.0, 0.0, 1.0])?;
//! let jit_outputs = model.run(&[("x", &x)])?;
//! let jit_probs = jit_outputs[0].1.as_slice::<f32>().ok_or("f32 output")?;
//! for (jit, reference) in jit_probs.iter().zip(probs) {
//!     assert!((jit - reference).abs() <= 1e-6 + 1e-5 * reference.abs());
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Larger examples are in `examples/`: `lenet.rs` (LeNet-5) and `attention_block.rs` (a transformer
//! encoder block), both run as tests by `tests/examples.rs`.

pub use sinter_dsl as dsl;
pub use sinter_ir as ir;
pub use sinter_jit as jit;
pub use sinter_jit::{compile, CompileOptions, CompiledModel, ModelError};
pub use sinter_loops as loops;
pub use sinter_opt as opt;
pub use sinter_ref as reference;
