//! The memory planner: every computed buffer of a program gets an offset in one arena.
//!
//! A buffer is live from the first call that touches it to the last one (graph outputs until the
//! end of the run). Two buffers whose live ranges share a call must not overlap in memory; buffers
//! that are never live at the same time may share bytes. Placement is greedy by size (largest
//! first), each buffer at the lowest offset that fits between the buffers it conflicts with
//! (first fit), which is the usual near-optimal heuristic for this interval-colouring problem.
//!
//! **Invariant: the first call that touches a computed buffer writes it** (as an `Output` or
//! `Scratch` parameter): otherwise a kernel would read arena bytes left over from another buffer
//! or another run. `plan_memory` rejects programs that break it.

use sinter_loops::{BufferRole, BufferSource, Program, ProgramBufferId};

/// Offsets are multiples of this, so vector loads never straddle cache lines needlessly and every
/// element type is naturally aligned.
pub const ARENA_ALIGN: usize = 64;

/// Where each computed buffer lives in the arena.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryPlan {
    /// By program buffer index: `Some(offset)` for computed buffers that some call touches.
    pub offsets: Vec<Option<usize>>,
    /// By program buffer index: the calls (inclusive) during which the buffer is live.
    pub live_ranges: Vec<Option<(usize, usize)>>,
    /// Bytes of the arena: the end of the highest placed buffer.
    pub peak_bytes: usize,
    /// What the arena would need without reuse (the sum of all placed buffer sizes), for reports.
    pub unshared_bytes: usize,
}

/// A program the planner cannot lay out.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    #[error("kernel `{kernel}` (call {call_idx}) reads computed buffer `{buffer}` before any call writes it")]
    ReadBeforeWrite {
        kernel: String,
        call_idx: usize,
        buffer: String,
    },
    #[error("output `{output}` is bound to computed buffer `{buffer}`, which no call writes")]
    OutputNeverWritten { output: String, buffer: String },
    #[error("output `{output}` names buffer {buffer}, which does not exist")]
    NoSuchBuffer {
        output: String,
        buffer: ProgramBufferId,
    },
    #[error("buffer `{buffer}` of {bytes} bytes does not fit the address space")]
    TooLarge { buffer: String, bytes: String },
}

fn align_up(n: usize) -> Option<usize> {
    n.checked_add(ARENA_ALIGN - 1)
        .map(|v| v / ARENA_ALIGN * ARENA_ALIGN)
}

/// Plans the arena of `program` (whose bindings were checked).
pub fn plan_memory(program: &Program) -> Result<MemoryPlan, PlanError> {
    let n_buffers = program.buffers.len();
    let n_calls = program.calls.len();
    let mut live: Vec<Option<(usize, usize)>> = vec![None; n_buffers];
    for (call_idx, call) in program.calls.iter().enumerate() {
        for (decl, &arg) in call.kernel.buffers.iter().zip(&call.args) {
            let Some(buffer) = program.buffers.get(arg.0 as usize) else {
                continue;
            };
            if !matches!(buffer.source, BufferSource::Computed) {
                continue;
            }
            let range = &mut live[arg.0 as usize];
            match range {
                Some((_, last)) => *last = call_idx,
                None => {
                    if !matches!(decl.role, BufferRole::Output | BufferRole::Scratch) {
                        return Err(PlanError::ReadBeforeWrite {
                            kernel: call.kernel.name.clone(),
                            call_idx,
                            buffer: buffer.name.clone(),
                        });
                    }
                    *range = Some((call_idx, call_idx));
                }
            }
        }
    }
    for (output, id) in &program.outputs {
        let Some(buffer) = program.buffers.get(id.0 as usize) else {
            return Err(PlanError::NoSuchBuffer {
                output: output.clone(),
                buffer: *id,
            });
        };
        if !matches!(buffer.source, BufferSource::Computed) {
            continue;
        }
        match &mut live[id.0 as usize] {
            Some((_, last)) => *last = n_calls,
            None => {
                return Err(PlanError::OutputNeverWritten {
                    output: output.clone(),
                    buffer: buffer.name.clone(),
                })
            }
        }
    }

    let mut sizes = vec![0usize; n_buffers];
    for (idx, buffer) in program.buffers.iter().enumerate() {
        if live[idx].is_some() {
            let bytes = buffer
                .len()
                .checked_mul(buffer.dtype.size_bytes())
                .and_then(align_up)
                .ok_or_else(|| PlanError::TooLarge {
                    buffer: buffer.name.clone(),
                    bytes: format!("{} x {}", buffer.len(), buffer.dtype.size_bytes()),
                })?;
            sizes[idx] = bytes;
        }
    }
    let mut order: Vec<usize> = (0..n_buffers).filter(|&i| live[i].is_some()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(sizes[i]), i));

    let mut offsets: Vec<Option<usize>> = vec![None; n_buffers];
    let mut placed: Vec<usize> = Vec::new();
    let mut peak = 0usize;
    let mut unshared = 0usize;
    for &idx in &order {
        let (first, last) = live[idx].expect("filtered above");
        let mut conflicts: Vec<(usize, usize)> = placed
            .iter()
            .filter(|&&other| {
                let (o_first, o_last) = live[other].expect("placed buffers are live");
                first <= o_last && o_first <= last && sizes[other] > 0
            })
            .map(|&other| {
                let start = offsets[other].expect("placed");
                (start, start + sizes[other])
            })
            .collect();
        conflicts.sort_unstable();
        let mut offset = 0usize;
        for (start, end) in conflicts {
            if offset + sizes[idx] <= start {
                break;
            }
            offset = offset.max(end);
        }
        offsets[idx] = Some(offset);
        placed.push(idx);
        peak = peak.max(offset + sizes[idx]);
        unshared += sizes[idx];
    }
    Ok(MemoryPlan {
        offsets,
        live_ranges: live,
        peak_bytes: peak,
        unshared_bytes: unshared,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sinter_ir::DType;
    use sinter_loops::{Kernel, KernelBuilder, KernelCall, ProgramBuffer};

    /// A kernel with the given parameter roles and lengths (its body is irrelevant to the planner).
    fn kernel(params: &[(BufferRole, DType, usize)]) -> Kernel {
        let mut kb = KernelBuilder::new("k", vec![]);
        for (idx, &(role, dtype, len)) in params.iter().enumerate() {
            kb.buffer(format!("p{idx}"), dtype, len, role);
        }
        kb.finish()
    }

    /// Buffers of the given byte sizes (u8) and calls binding (role, buffer) lists.
    fn program(sizes: &[usize], calls: &[Vec<(BufferRole, usize)>], outputs: &[usize]) -> Program {
        let buffers = sizes
            .iter()
            .enumerate()
            .map(|(idx, &len)| ProgramBuffer {
                name: format!("B{idx}"),
                dtype: DType::U8,
                shape: vec![len],
                source: BufferSource::Computed,
            })
            .collect();
        let calls = calls
            .iter()
            .map(|params| KernelCall {
                kernel: kernel(
                    &params
                        .iter()
                        .map(|&(role, b)| (role, DType::U8, sizes[b]))
                        .collect::<Vec<_>>(),
                ),
                args: params
                    .iter()
                    .map(|&(_, b)| ProgramBufferId(b as u32))
                    .collect(),
            })
            .collect();
        Program {
            buffers,
            calls,
            outputs: outputs
                .iter()
                .map(|&b| (format!("out{b}"), ProgramBufferId(b as u32)))
                .collect(),
        }
    }

    fn assert_no_live_overlap(program: &Program, plan: &MemoryPlan) {
        let n = program.buffers.len();
        for a in 0..n {
            for b in a + 1..n {
                let (Some((af, al)), Some((bf, bl))) = (plan.live_ranges[a], plan.live_ranges[b])
                else {
                    continue;
                };
                if af > bl || bf > al {
                    continue;
                }
                let size = |i: usize| program.buffers[i].len();
                let (ao, bo) = (plan.offsets[a].unwrap(), plan.offsets[b].unwrap());
                let disjoint =
                    ao + size(a) <= bo || bo + size(b) <= ao || size(a) == 0 || size(b) == 0;
                assert!(
                    disjoint,
                    "B{a} at {ao}+{} and B{b} at {bo}+{} are live together",
                    size(a),
                    size(b)
                );
            }
        }
        for (idx, offset) in plan.offsets.iter().enumerate() {
            if let Some(offset) = offset {
                assert_eq!(offset % ARENA_ALIGN, 0);
                assert!(offset + program.buffers[idx].len() <= plan.peak_bytes);
            }
        }
    }

    #[test]
    fn a_chain_reuses_memory() {
        use BufferRole::{Input, Output};
        // B0 -> B1 -> B2 -> B3: only two neighbours are live at once.
        let p = program(
            &[1000, 1000, 1000, 1000],
            &[
                vec![(Output, 0)],
                vec![(Input, 0), (Output, 1)],
                vec![(Input, 1), (Output, 2)],
                vec![(Input, 2), (Output, 3)],
            ],
            &[3],
        );
        let plan = plan_memory(&p).unwrap();
        assert_no_live_overlap(&p, &plan);
        assert_eq!(plan.peak_bytes, 2 * 1024);
        assert_eq!(plan.unshared_bytes, 4 * 1024);
        assert_eq!(plan.live_ranges[3], Some((3, 4)), "outputs live to the end");
    }

    #[test]
    fn random_programs_never_overlap_live_buffers() {
        use BufferRole::{Input, Output, Scratch};
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        for _ in 0..300 {
            let n_buffers = 2 + next(12);
            let sizes: Vec<usize> = (0..n_buffers)
                .map(|_| [0, 1, 63, 64, 65, 500, 4096][next(7)])
                .collect();
            let mut written = vec![false; n_buffers];
            let mut calls = Vec::new();
            for _ in 0..1 + next(10) {
                let mut params = Vec::new();
                for _ in 0..1 + next(3) {
                    let b = next(n_buffers);
                    let role = if written[b] {
                        [Input, Output][next(2)]
                    } else {
                        [Output, Scratch][next(2)]
                    };
                    written[b] = true;
                    params.push((role, b));
                }
                calls.push(params);
            }
            let outputs: Vec<usize> = (0..n_buffers)
                .filter(|&b| written[b] && next(3) == 0)
                .collect();
            let p = program(&sizes, &calls, &outputs);
            let plan = plan_memory(&p).unwrap();
            assert_no_live_overlap(&p, &plan);
            assert!(plan.peak_bytes <= plan.unshared_bytes);
        }
    }

    #[test]
    fn reading_before_writing_is_rejected() {
        use BufferRole::{Input, Output};
        let p = program(&[8, 8], &[vec![(Input, 0), (Output, 1)]], &[1]);
        assert!(matches!(
            plan_memory(&p),
            Err(PlanError::ReadBeforeWrite { call_idx: 0, .. })
        ));
        let p = program(&[8, 8], &[vec![(Output, 1)]], &[0]);
        assert!(matches!(
            plan_memory(&p),
            Err(PlanError::OutputNeverWritten { .. })
        ));
    }
}
