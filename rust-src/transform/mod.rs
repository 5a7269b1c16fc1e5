//! Derivative synthesis. Both modes start from a `Frame`: the derivative function with
//! the ABI signature, whose entry block loads the primal arguments, and into which the
//! (inlined, cleaned) primal body is moved, not copied. `forward` then adds tangents
//! next to the primal; `reverse` instruments the primal as the forward sweep and
//! appends the reverse sweep.

pub mod calls;
pub mod dead_results;
pub mod forward;
pub mod lane_order;
pub mod reverse;
pub mod shadow;
pub mod tape;

use crate::error::{Error, Result};
use crate::llvm::{Block, Builder, Built, Function, Module, Value};
use crate::request::{Layout, Leaf, Passing, Request};

/// The derivative function under construction.
pub struct Frame<'ctx> {
    /// The derivative function: `i32 (ptr args, ptr shadows, ptr ret, ptr dret)`.
    pub g: Function<'ctx>,
    /// Its first block: argument loads and every alloca the transforms add.
    pub entry: Block<'ctx>,
    /// The branch ending `entry`; allocas and entry-time code go before it.
    pub entry_br: Value<'ctx>,
    /// Per Julia argument, the loaded primal value (`None` for ghosts).
    pub primal: Vec<Option<Value<'ctx>>>,
    /// Per batch lane, per Julia argument: the shadow object of a differentiated boxed
    /// argument (or the derivative memory of a struct of floats passed by reference).
    pub shadow_lanes: Vec<Vec<Option<Value<'ctx>>>>,
    /// The primal function's original first block, now in `g`.
    pub body_entry: Block<'ctx>,
    /// For the ABI entry: `g`'s parameters args, shadows, ret, dret.
    pub params: [Value<'ctx>; 4],
    /// For a callee's augmented forward function: its tape parameter.
    pub tape: Option<Value<'ctx>>,
    /// A result returned through memory (an `sret` parameter, Julia's convention for
    /// tuples and structs): the pointer, now `ret`, and its float type. It is the
    /// extra last entry of `primal`, with the `dret` lanes as its shadows in forward
    /// mode.
    pub result_memory: Option<(Value<'ctx>, crate::request::Leaf)>,
}

impl<'ctx> Frame<'ctx> {
    /// Creates `name` and moves `f`'s body into it, replacing `f`'s parameters with
    /// values loaded from the `args` array.
    pub fn build(m: &'ctx Module, f: Function<'ctx>, req: &Request, name: &str) -> Result<Frame<'ctx>> {
        let ptr = m.ptr();
        let g = m.add_function(name, m.fn_type(m.int(32), &[ptr, ptr, ptr, ptr]));
        let p = g.params();
        let params = [p[0], p[1], p[2], p[3]];
        let entry = m.append_block(g, "ox.entry");
        let b = m.builder();
        b.at_end(entry);

        let fparams = f.params();
        let mut next = 0usize;
        let mut primal = Vec::with_capacity(req.args.len() + 1);
        let width = req.width.max(1) as usize;
        let mut shadow_lanes = vec![vec![None; req.args.len()]; width];
        // A result in memory: the caller's `ret` buffer takes the place of the `sret`
        // parameter; `dret` holds its tangent, lane after lane.
        let mut result_memory = None;
        let mut result_lanes = vec![None; width];
        if let Some(ty) = f.sret_type() {
            let (leaf, size) = match ty.float_aggregate() {
                Some((l, n)) if l.float_bits() == 64 => (Leaf::F64, 8 * n),
                Some((l, n)) if l.float_bits() == 32 => (Leaf::F32, 4 * n),
                _ if req.ret == crate::request::Activity::Const => (Leaf::F64, 0),
                _ => {
                    return Err(Error::Unsupported(format!(
                        "`{}` returns {}; a differentiated struct or tuple result must hold Float64 (or Float32) alone",
                        crate::names::julia_name(&f.name()),
                        ty.print()
                    )))
                }
            };
            let p = fparams[0];
            next = 1;
            let v = b.addrspace_cast(params[2], p.ty())?;
            v.set_name("ret");
            if req.ret == crate::request::Activity::Duplicated {
                if req.mode != crate::request::Mode::Forward {
                    return Err(Error::Unsupported(
                        "a struct or tuple result can be differentiated in forward mode only".into(),
                    ));
                }
                for (lane, slot) in result_lanes.iter_mut().enumerate() {
                    let at = b.gep(m.int(8), params[3], &[m.const_int(m.int(64), lane as u64 * size)])?;
                    *slot = Some(b.addrspace_cast(at, p.ty())?);
                }
                result_memory = Some((v, leaf));
            }
            p.replace_all_uses_with(v);
        }
        for (i, a) in req.args.iter().enumerate() {
            let index = m.const_int(m.int(64), i as u64);
            match a.passing {
                Passing::Ghost => primal.push(None),
                Passing::Boxed => {
                    let Some(&fp) = fparams.get(next) else {
                        return Err(Error::InvalidRequest(format!(
                            "argument {i} is an object but the function has only {} parameters",
                            fparams.len()
                        )));
                    };
                    next += 1;
                    if !fp.ty().is_pointer() {
                        return Err(Error::InvalidRequest(format!(
                            "argument {i} is described as an object but is passed as {}",
                            fp.ty().print()
                        )));
                    }
                    // `array[i]` points at `lane`-th object pointer of the argument.
                    let object = |array: Value<'ctx>, lane: usize, name: String| -> Built<Value<'ctx>> {
                        let slot = b.load(ptr, b.gep(ptr, array, &[index])?)?;
                        let at = b.gep(ptr, slot, &[m.const_int(m.int(64), lane as u64)])?;
                        let v = b.addrspace_cast(b.load(ptr, at)?, fp.ty())?;
                        v.set_name(&name);
                        Ok(v)
                    };
                    let v = object(params[0], 0, format!("arg{i}"))?;
                    if a.activity == crate::request::Activity::Duplicated {
                        for (lane, shadows) in shadow_lanes.iter_mut().enumerate() {
                            shadows[i] = Some(object(params[1], lane, format!("shadow{i}.{lane}"))?);
                        }
                    }
                    fp.replace_all_uses_with(v);
                    primal.push(Some(v));
                }
                Passing::Value => {
                    let Some(&fp) = fparams.get(next) else {
                        return Err(Error::InvalidRequest(format!(
                            "argument {i} is passed by value but the function has only {} parameters",
                            fparams.len()
                        )));
                    };
                    next += 1;
                    check_type_tree(i, fp, &a.type_tree)?;
                    let slot = b.load(ptr, b.gep(ptr, params[0], &[index])?)?;
                    // Structs and tuples are passed by reference: the pointer to the
                    // caller's bytes is the argument (in Julia's address space).
                    let v = if fp.ty().is_pointer() && a.holds_no_pointer() {
                        b.addrspace_cast(slot, fp.ty())?
                    } else {
                        b.load(fp.ty(), slot)?
                    };
                    v.set_name(&format!("arg{i}"));
                    // A differentiated struct of floats: its derivative memory, lane by
                    // lane (`shadows[i]` holds the lanes one after the other).
                    if let Some((_, size)) = a.float_struct().filter(|_| fp.ty().is_pointer()) {
                        // (Lanes need the struct's size, known when it is floats alone.)
                        let size = match size {
                            Some(size) => size,
                            None if width == 1 => 0,
                            None => {
                                return Err(Error::Unsupported(format!(
                                    "argument {i}: batching a struct that mixes floats with integers"
                                )))
                            }
                        };
                        let base = b.load(ptr, b.gep(ptr, params[1], &[index])?)?;
                        for (lane, shadows) in shadow_lanes.iter_mut().enumerate() {
                            let at = b.gep(m.int(8), base, &[m.const_int(m.int(64), lane as u64 * size)])?;
                            let s = b.addrspace_cast(at, fp.ty())?;
                            s.set_name(&format!("shadow{i}.{lane}"));
                            shadows[i] = Some(s);
                        }
                    }
                    fp.replace_all_uses_with(v);
                    primal.push(Some(v));
                }
            }
        }
        if next != fparams.len() {
            return Err(Error::InvalidRequest(format!(
                "the request describes {next} passed arguments but `{}` takes {}",
                crate::names::julia_name(&f.name()),
                fparams.len()
            )));
        }
        let body_entry = f.entry_block().ok_or_else(|| Error::BadIr("entry function has no body".into()))?;
        for bb in f.blocks() {
            bb.move_to_end_of(g);
        }
        let entry_br = b.br(body_entry)?;
        if let Some((v, _)) = result_memory {
            primal.push(Some(v));
            for (lanes, s) in shadow_lanes.iter_mut().zip(result_lanes) {
                lanes.push(s);
            }
        }
        Ok(Frame { g, entry, entry_br, primal, shadow_lanes, body_entry, params, tape: None, result_memory })
    }

    /// Moves the body of callee `h` into `g`, whose first parameters are `h`'s;
    /// `shadow_params[lane][k]` is the index of the parameter holding the shadow of `h`'s
    /// pointer parameter `k` in batch lane `lane`, `tape_param` that of the tape.
    pub fn build_callee(
        m: &'ctx Module,
        h: Function<'ctx>,
        g: Function<'ctx>,
        shadow_params: &[Vec<Option<usize>>],
        tape_param: Option<usize>,
    ) -> Result<Frame<'ctx>> {
        let hp = h.params();
        let gp = g.params();
        let entry = m.append_block(g, "ox.entry");
        let b = m.builder();
        b.at_end(entry);
        let mut primal = Vec::with_capacity(hp.len());
        for (k, p) in hp.iter().enumerate() {
            p.replace_all_uses_with(gp[k]);
            primal.push(Some(gp[k]));
        }
        let shadow_lanes: Vec<Vec<Option<Value<'ctx>>>> =
            shadow_params.iter().map(|lane| lane.iter().map(|s| s.map(|i| gp[i])).collect()).collect();
        let body_entry = h.entry_block().ok_or_else(|| Error::BadIr("callee has no body".into()))?;
        for bb in h.blocks() {
            bb.move_to_end_of(g);
        }
        let entry_br = b.br(body_entry)?;
        let undef = m.const_null(m.ptr());
        let tape = tape_param.map(|i| gp[i]);
        let params = [undef; 4];
        Ok(Frame { g, entry, entry_br, primal, shadow_lanes, body_entry, params, tape, result_memory: None })
    }

    /// Whether this is the ABI entry, whose status reports what the derivative found
    /// when it ran (`diagnostics::lower`), rather than a callee's derivative function (whose
    /// ABI parameters are placeholders).
    pub fn is_entry(&self) -> bool {
        !self.params[0].is_constant()
    }

    /// A builder positioned in the entry block, before its branch.
    pub fn entry_builder<'m>(&self, m: &'m Module) -> Built<Builder<'m>> {
        let b = m.builder();
        b.before(self.entry_br)?;
        Ok(b)
    }

    /// Pointer `shadows[i]` (loaded in the entry block).
    pub fn shadow_ptr(&self, m: &'ctx Module, i: usize) -> Built<Value<'ctx>> {
        let b = self.entry_builder(m)?;
        let ptr = m.ptr();
        b.load(ptr, b.gep(ptr, self.params[1], &[m.const_int(m.int(64), i as u64)])?)
    }
}

fn check_type_tree(i: usize, param: Value, tree: &[(u64, Layout)]) -> Result<()> {
    let ty = param.ty();
    let ok = match tree {
        [] => true,
        // (A struct of one number, such as a closure capturing one, comes by reference.)
        [(0, Layout::F64)] => ty.float_bits() == 64 || ty.is_pointer(),
        [(0, Layout::F32)] => ty.float_bits() == 32 || ty.is_pointer(),
        [(0, Layout::Integer)] => ty.is_int() || ty.is_pointer(),
        [(0, Layout::Pointer | Layout::Object(_) | Layout::Array(_))] => ty.is_pointer(),
        // A struct or tuple: by reference (a pointer) or as an LLVM aggregate.
        _ => ty.is_pointer() || !ty.is_floating() && !ty.is_int(),
    };
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidRequest(format!(
            "argument {i}: type tree {tree:?} does not match the LLVM parameter type {}",
            ty.print()
        )))
    }
}

/// Adds `delta` into the adjoint slot `slot` (`*slot += delta`).
pub fn accumulate(b: &Builder, slot: Value, delta: Value) -> Built<()> {
    let old = b.load(delta.ty(), slot)?;
    b.store(b.fadd_adjoint(old, delta)?, slot)?;
    Ok(())
}
