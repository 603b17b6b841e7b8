//! Compiling a batch of kernels into one `JITModule`: the host ISA, the helper symbols, one
//! function per kernel, one `finalize_definitions` for all of them.
//!
//! The ISA comes from `cranelift_native::builder()` (so AVX/FMA are enabled when the host has them;
//! without them `fma` on `f32x4` becomes four libcalls) with `opt_level=speed`.

use super::helpers::all_helpers;
use super::{build_kernel, kernel_signature, CodegenEnv, CodegenError};
use cranelift_codegen::ir::{AbiParam, Signature, UserFuncName};
use cranelift_codegen::isa::OwnedTargetIsa;
use cranelift_codegen::settings::{self, Configurable};
use cranelift_codegen::Context;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, FuncId, Linkage, Module};
use sinter_loops::Kernel;
use std::collections::HashMap;

/// The ABI of every compiled kernel (see the `codegen` module docs).
pub type KernelFn = unsafe extern "C" fn(args: *const *mut u8, begin: i64, end: i64) -> i32;

/// Text dumps of one compiled kernel, for `sinter dump --stage clif|asm` and debugging.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KernelDump {
    /// The kernel's name (`Kernel::name`).
    pub name: String,
    /// The CLIF the code generator produced.
    pub clif: String,
    /// The CLIF after Cranelift's optimisation passes.
    pub optimized_clif: String,
    /// Cranelift's disassembly of the machine code (its own VCode listing).
    pub disasm: String,
}

/// A failure while building the JIT module.
#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    #[error(transparent)]
    Codegen(#[from] CodegenError),
    #[error("the host ISA is not supported by Cranelift: {0}")]
    Isa(String),
    #[error("Cranelift rejected kernel `{kernel}`: {message}")]
    Cranelift { kernel: String, message: String },
    #[error("linking the JIT module failed: {0}")]
    Link(String),
}

/// Compiled kernels: the module that owns their code and one function pointer per kernel.
pub(crate) struct CompiledKernels {
    pub module: JITModule,
    pub functions: Vec<KernelFn>,
    pub dumps: Vec<KernelDump>,
}

/// The host ISA with `opt_level=speed`, and whether it has FMA (with AVX, which Cranelift needs to
/// emit `vfmadd`).
pub(crate) fn host_isa() -> Result<(OwnedTargetIsa, bool), ModuleError> {
    let mut flags = settings::builder();
    let set = |flags: &mut settings::Builder, name: &str, value: &str| {
        flags
            .set(name, value)
            .map_err(|e| ModuleError::Isa(format!("setting {name}={value}: {e}")))
    };
    set(&mut flags, "opt_level", "speed")?;
    set(&mut flags, "use_colocated_libcalls", "false")?;
    set(&mut flags, "is_pic", "false")?;
    let isa_builder = cranelift_native::builder().map_err(|e| ModuleError::Isa(e.to_string()))?;
    let isa = isa_builder
        .finish(settings::Flags::new(flags))
        .map_err(|e| ModuleError::Isa(e.to_string()))?;
    let flag = |name: &str| {
        isa.isa_flags()
            .iter()
            .any(|v| v.name == name && v.as_bool() == Some(true))
    };
    let use_fma = flag("has_fma") && flag("has_avx");
    Ok((isa, use_fma))
}

/// Options of one compilation.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ModuleOptions {
    /// Keep CLIF and disassembly text of every kernel.
    pub dumps: bool,
}

/// Compiles `kernels` (already verified) into one module and returns their entry points.
pub(crate) fn compile_kernels(
    kernels: &[&Kernel],
    options: ModuleOptions,
) -> Result<CompiledKernels, ModuleError> {
    let (isa, use_fma) = host_isa()?;
    let call_conv = isa.default_call_conv();
    let frontend_config = isa.frontend_config();
    let mut jit_builder = JITBuilder::with_isa(isa, default_libcall_names());
    let helpers = all_helpers();
    for helper in &helpers {
        jit_builder.symbol(helper.name, helper.ptr);
    }
    let mut module = JITModule::new(jit_builder);
    let link_err = |e: cranelift_module::ModuleError| ModuleError::Link(e.to_string());

    let mut env = CodegenEnv {
        use_fma,
        helpers: HashMap::new(),
        frontend_config,
    };
    for helper in &helpers {
        let mut sig = Signature::new(call_conv);
        for _ in 0..helper.n_params {
            sig.params.push(AbiParam::new(helper.ty));
        }
        sig.returns.push(AbiParam::new(helper.ty));
        let id = module
            .declare_function(helper.name, Linkage::Import, &sig)
            .map_err(link_err)?;
        env.helpers.insert(helper.name, (id.as_u32(), sig));
    }

    let signature = kernel_signature(call_conv);
    let mut ctx: Context = module.make_context();
    ctx.set_disasm(options.dumps);
    let mut builder_ctx = FunctionBuilderContext::new();
    let mut ids: Vec<FuncId> = Vec::with_capacity(kernels.len());
    let mut dumps = Vec::new();
    for (kernel_idx, kernel) in kernels.iter().enumerate() {
        // Kernel names need not be unique or symbol-safe; the index makes the symbol so.
        let symbol = format!("sinter_kernel_{kernel_idx}");
        let id = module
            .declare_function(&symbol, Linkage::Local, &signature)
            .map_err(link_err)?;
        ctx.func.signature = signature.clone();
        ctx.func.name = UserFuncName::user(0, id.as_u32());
        build_kernel(
            FunctionBuilder::new(&mut ctx.func, &mut builder_ctx),
            kernel,
            &env,
        )?;
        let clif = if options.dumps {
            ctx.func.display().to_string()
        } else {
            String::new()
        };
        module
            .define_function(id, &mut ctx)
            .map_err(|e| ModuleError::Cranelift {
                kernel: kernel.name.clone(),
                message: format!("{e:?}"),
            })?;
        if options.dumps {
            dumps.push(KernelDump {
                name: kernel.name.clone(),
                clif,
                optimized_clif: ctx.func.display().to_string(),
                disasm: ctx
                    .compiled_code()
                    .and_then(|code| code.vcode.clone())
                    .unwrap_or_default(),
            });
        }
        module.clear_context(&mut ctx);
        ctx.set_disasm(options.dumps);
        ids.push(id);
    }
    module.finalize_definitions().map_err(link_err)?;
    let functions = ids
        .iter()
        .map(|&id| {
            let ptr = module.get_finalized_function(id);
            // SAFETY: the function was defined with `kernel_signature`, which is this ABI.
            unsafe { std::mem::transmute::<*const u8, KernelFn>(ptr) }
        })
        .collect();
    Ok(CompiledKernels {
        module,
        functions,
        dumps,
    })
}
