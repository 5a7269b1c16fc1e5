//! Call-by-call differentiation of functions that are not inlined (recursion: Base's
//! `sum` reduces by pairwise recursion). In reverse mode each such callee `h` gets a
//! pair of functions sharing the caller's tape:
//!
//! - `h.aug(params..., shadows..., tape) -> ret`: `h`'s body as a forward sweep, pushing
//!   what its reverse needs onto the tape;
//! - `h.rev(params..., shadows..., seeds..., tape) -> {adjoints of float params}`: `h`'s
//!   reverse sweep, popping exactly what `h.aug` pushed.
//!
//! In batch mode (`width` lanes) each shadowed parameter has `width` shadows, one per
//! lane, side by side; `h.rev` takes one seed per lane and returns, per float
//! parameter, one adjoint per lane.
//!
//! Calls nest, so one LIFO tape serves the whole call tree: a call site runs `h.aug` in
//! the caller's forward sweep and `h.rev` at the same point of its reverse sweep.
//! Every float parameter is treated as active and every pointer parameter that a call
//! site passes shadowed memory in gets a shadow; each callee has one such pattern.

use super::Frame;
use crate::analysis::memory::Memory;
use crate::error::{Error, Result};
use crate::llvm::{Built, Call, Function, Module, Type};
use crate::request::Leaf;
use std::cell::RefCell;
use std::collections::HashMap;

/// Which parameters of a callee carry derivatives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    /// Per parameter: the memory type behind a shadowed pointer parameter.
    pub shadowed: Vec<Option<Leaf>>,
    /// Per parameter: whether a call site may pass memory without a derivative there,
    /// with the pointer itself as its shadow (runtime activity,
    /// `analysis::memory::Memory::maybe_constant`): the callee tests it where it loads
    /// and stores through it.
    pub maybe_constant: Vec<bool>,
    /// What the memory the callee returns holds, when the call site reads its shadow
    /// (`analysis::memory::callee_result_leaf`): the callee's derivative functions then
    /// write the result's shadow, one per lane, into slots the call site passes.
    pub returned: Option<Leaf>,
}

impl Pattern {
    /// Per batch lane, per parameter, the index of the parameter holding its shadow in
    /// that lane, when the shadows start at parameter `first`: each shadowed parameter's
    /// `width` lanes side by side, in parameter order.
    pub fn shadow_lanes(&self, first: usize, width: usize) -> Vec<Vec<Option<usize>>> {
        let mut lanes = vec![vec![None; self.shadowed.len()]; width];
        let mut next = first;
        for k in (0..self.shadowed.len()).filter(|&k| self.shadowed[k].is_some()) {
            for lane in lanes.iter_mut() {
                lane[k] = Some(next);
                next += 1;
            }
        }
        lanes
    }

    /// The pattern of call `call` in a function whose memory analysis is `mem`.
    pub fn of_call(call: Call, mem: &Memory) -> Pattern {
        let args = 0..call.call_arg_count();
        let call = call.as_value();
        Pattern {
            shadowed: args.clone().map(|k| mem.callee_leaf(call.operand(k))).collect(),
            maybe_constant: args.map(|k| mem.maybe_constant(call.operand(k))).collect(),
            returned: mem.leaf(call).filter(|_| call.ty().is_pointer()),
        }
    }

    /// The pattern serving call sites of both `self` and `other`, if one can: the same
    /// shadowed parameters, each tested at run time where either may pass memory
    /// without a derivative (a test that a shadowed pointer always passes costs a
    /// comparison).
    fn join(&self, other: &Pattern) -> Option<Pattern> {
        (self.shadowed == other.shadowed && self.returned == other.returned).then(|| Pattern {
            shadowed: self.shadowed.clone(),
            maybe_constant: self.maybe_constant.iter().zip(&other.maybe_constant).map(|(a, b)| *a || *b).collect(),
            returned: self.returned,
        })
    }
}

/// The derivative functions of one callee.
#[derive(Clone, Debug)]
pub struct Pair<'ctx> {
    /// `h.aug`.
    pub aug: Function<'ctx>,
    /// `h.rev`.
    pub rev: Function<'ctx>,
    /// Which parameters are shadowed.
    pub pattern: Pattern,
    /// Indices of the float parameters, in the order `h.rev` returns their adjoints.
    pub float_params: Vec<usize>,
    /// Whether `h` returns a float (then `h.rev` takes its adjoint as the seed).
    pub ret_float: bool,
    /// Batch lanes: shadows and seeds per value.
    pub width: usize,
}

/// The forward-mode derivative function of one callee:
/// `h.fwd(params..., tangents of float params..., shadows...) -> {ret, tangent}`.
#[derive(Clone, Debug)]
pub struct Forward<'ctx> {
    /// `h.fwd`.
    pub f: Function<'ctx>,
    /// Which parameters are shadowed.
    pub pattern: Pattern,
    /// Indices of the float parameters, in the order their tangents are passed.
    pub float_params: Vec<usize>,
    /// Whether `h` returns a float (then `h.fwd` returns `{primal, tangents...}`).
    pub ret_float: bool,
    /// Tangents per value (batch lanes).
    pub width: usize,
}

/// Memory and activity analysis of a callee's frame, given its pair's pattern.
pub type Analyze<'a, 'ctx> =
    dyn Fn(&Frame<'ctx>, &Pair<'ctx>) -> Result<(Memory<'ctx>, crate::analysis::activity::Activity<'ctx>)> + 'a;

/// The callees of one derivative, generated on demand.
pub struct Callees<'ctx> {
    m: &'ctx Module,
    /// Whether every function of the module, as it was before differentiation, writes
    /// no memory but its own stack (`analysis::memory::writes_only_stack`).
    pub heap_readonly: bool,
    pairs: RefCell<HashMap<Function<'ctx>, Pair<'ctx>>>,
    forwards: RefCell<HashMap<Function<'ctx>, Forward<'ctx>>>,
    queue: RefCell<Vec<Function<'ctx>>>,
    /// Copies of callees that are also called without a derivative (`sum(x)` beside
    /// `sum([1.0, 2.0])`), made before their bodies move into their derivative functions.
    primal_copies: RefCell<HashMap<Function<'ctx>, Function<'ctx>>>,
    /// Callees whose derivative functions are built (or being built): their patterns
    /// are final.
    generated: RefCell<std::collections::HashSet<Function<'ctx>>>,
    /// For each function analysed so far (the entry, callees' `h.aug`), the functions it
    /// calls at a site after which it may resize a differentiated array, by name
    /// (`reverse::called_before_resizes`).
    resizing: RefCell<HashMap<Function<'ctx>, std::collections::HashSet<String>>>,
}

impl<'ctx> Callees<'ctx> {
    /// No callees yet. Made before the module changes (it records `heap_readonly`).
    pub fn new(m: &'ctx Module) -> Callees<'ctx> {
        // A function that never returns (the builder of an exception it throws) writes
        // nothing the rest of the derivative reads, unless a `try` catches its exception.
        let catches = m.function(crate::julia::current().enter_handler).is_some_and(|h| !h.users().is_empty());
        let heap_readonly = m
            .functions()
            .into_iter()
            .filter(|g| !g.is_declaration() && (catches || !g.has_fn_attr("noreturn")))
            .all(crate::analysis::memory::writes_only_stack);
        Callees {
            m,
            heap_readonly,
            pairs: RefCell::new(HashMap::new()),
            forwards: RefCell::new(HashMap::new()),
            queue: RefCell::new(Vec::new()),
            primal_copies: RefCell::new(HashMap::new()),
            generated: RefCell::new(std::collections::HashSet::new()),
            resizing: RefCell::new(HashMap::new()),
        }
    }

    /// Records what `g`'s memory analysis says of the resizes after its calls (`g` as
    /// analysed, before any transform).
    pub fn note_resizes(&self, g: Function<'ctx>, mem: &crate::analysis::memory::Memory<'ctx>) {
        self.resizing.borrow_mut().insert(g, super::reverse::called_before_resizes(g, mem));
    }

    /// The functions `g` calls at a site after which it may resize a differentiated
    /// array, if `g` was analysed (`note_resizes`).
    pub fn resizing_after(&self, g: Function<'ctx>) -> Option<std::collections::HashSet<String>> {
        self.resizing.borrow().get(&g).cloned()
    }

    /// The pair of `h` for `pattern` and `width` lanes, declared now and defined by
    /// `generate_all`.
    pub fn reverse_pair(&self, h: Function<'ctx>, pattern: Pattern, width: usize) -> Result<Pair<'ctx>> {
        if let Some(p) = self.pairs.borrow_mut().get_mut(&h) {
            p.pattern = self.joined(h, &p.pattern, &pattern)?;
            return Ok(p.clone());
        }
        let m = self.m;
        let params: Vec<Type<'ctx>> = h.params().iter().map(|p| p.ty()).collect();
        let shadows: Vec<Type<'ctx>> = params
            .iter()
            .zip(&pattern.shadowed)
            .filter(|(_, s)| s.is_some())
            .flat_map(|(t, _)| std::iter::repeat_n(*t, width))
            .collect();
        let float_params: Vec<usize> = (0..params.len()).filter(|&k| params[k].is_floating()).collect();
        let ret = h.return_type();
        let ret_float = ret.is_floating();
        // (The slots the result's shadows go into, one per lane; `h.rev` takes them too,
        // unread, so that its parameters mirror `h.aug`'s up to the seeds.)
        let slots = if pattern.returned.is_some() { width } else { 0 };
        let mut aug_params = params.clone();
        aug_params.extend(&shadows);
        aug_params.extend(std::iter::repeat_n(m.ptr(), slots));
        aug_params.push(m.ptr());
        let mut rev_params = params.clone();
        rev_params.extend(&shadows);
        rev_params.extend(std::iter::repeat_n(m.ptr(), slots));
        if ret_float {
            rev_params.extend(std::iter::repeat_n(ret, width));
        }
        rev_params.push(m.ptr());
        let adjoints: Vec<Type<'ctx>> =
            float_params.iter().flat_map(|&k| std::iter::repeat_n(params[k], width)).collect();
        let rev_ret = if adjoints.is_empty() { m.void() } else { m.struct_type(&adjoints) };
        let base = h.name();
        // (Declared with external linkage until `generate_all` defines them: the verifier
        // run after the reverse stage rejects an internal function without a body. The
        // finish stage makes every function the engine defined internal.)
        let aug = m.add_function(&format!("{base}.aug"), m.fn_type(ret, &aug_params));
        let rev = m.add_function(&format!("{base}.rev"), m.fn_type(rev_ret, &rev_params));
        let pair = Pair { aug, rev, pattern, float_params, ret_float, width };
        self.pairs.borrow_mut().insert(h, pair.clone());
        self.queue.borrow_mut().push(h);
        Ok(pair)
    }

    /// The forward-mode function of `h` for `pattern`, declared now and defined by
    /// `generate_all`.
    pub fn forward_fn(&self, h: Function<'ctx>, pattern: Pattern, width: usize) -> Result<Forward<'ctx>> {
        if let Some(f) = self.forwards.borrow_mut().get_mut(&h) {
            f.pattern = self.joined(h, &f.pattern, &pattern)?;
            return Ok(f.clone());
        }
        let m = self.m;
        let params: Vec<Type<'ctx>> = h.params().iter().map(|p| p.ty()).collect();
        let float_params: Vec<usize> = (0..params.len()).filter(|&k| params[k].is_floating()).collect();
        // h's parameters, `width` tangents per float parameter, `width` shadows per
        // shadowed pointer parameter.
        let mut fwd_params = params.clone();
        for &k in &float_params {
            fwd_params.extend(std::iter::repeat_n(params[k], width));
        }
        for (t, s) in params.iter().zip(&pattern.shadowed) {
            if s.is_some() {
                fwd_params.extend(std::iter::repeat_n(*t, width));
            }
        }
        // (The slots the result's tangents, shadows of its memory, go into, one per lane.)
        if pattern.returned.is_some() {
            fwd_params.extend(std::iter::repeat_n(m.ptr(), width));
        }
        let ret = h.return_type();
        let ret_float = ret.is_floating();
        let fwd_ret = if ret_float { m.struct_type(&vec![ret; 1 + width]) } else { ret };
        let f = m.add_function(&format!("{}.fwd", h.name()), m.fn_type(fwd_ret, &fwd_params));
        let fwd = Forward { f, pattern, float_params, ret_float, width };
        self.forwards.borrow_mut().insert(h, fwd.clone());
        self.queue.borrow_mut().push(h);
        Ok(fwd)
    }

    /// Defines every declared pair (and the pairs their bodies call); `h`'s body moves
    /// into `h.aug`, and `h` is deleted.
    pub fn generate_all(&self, analyze: &Analyze<'_, 'ctx>) -> Result<()> {
        loop {
            let Some(h) = self.queue.borrow_mut().pop() else { return Ok(()) };
            self.generated.borrow_mut().insert(h);
            self.keep_primal(h)?;
            let fwd = self.forwards.borrow().get(&h).cloned();
            if let Some(fwd) = fwd {
                let n = h.params().len();
                let lanes = fwd.pattern.shadow_lanes(n + fwd.float_params.len() * fwd.width, fwd.width);
                let frame = Frame::build_callee(self.m, h, fwd.f, &lanes, None)?;
                let pattern = Pair {
                    aug: fwd.f,
                    rev: fwd.f,
                    pattern: fwd.pattern.clone(),
                    float_params: fwd.float_params.clone(),
                    ret_float: fwd.ret_float,
                    width: fwd.width,
                };
                let (mem, act) = analyze(&frame, &pattern)?;
                super::forward::differentiate_callee(self.m, &frame, &act, &mem, &fwd, self)?;
                continue;
            }
            let pair = self.pairs.borrow()[&h].clone();
            let n = h.params().len();
            let lanes = pair.pattern.shadow_lanes(n, pair.width);
            let frame = Frame::build_callee(self.m, h, pair.aug, &lanes, Some(pair.aug.params().len() - 1))?;
            let (mem, act) = analyze(&frame, &pair)?;
            super::reverse::differentiate_callee(self.m, &frame, &act, &mem, &pair, self)?;
        }
    }

    /// The pattern of `h` serving a call site of `pattern` too (`Pattern::join`), while
    /// `h`'s derivative functions are not built yet.
    fn joined(&self, h: Function<'ctx>, declared: &Pattern, pattern: &Pattern) -> Result<Pattern> {
        if declared == pattern {
            return Ok(declared.clone());
        }
        match declared.join(pattern) {
            Some(joined) if joined == *declared || !self.generated.borrow().contains(&h) => Ok(joined),
            _ => Err(different_patterns(h)),
        }
    }

    /// Before `h`'s body moves into its derivative function: a copy of `h` when other
    /// functions call it, for the calls that stay primal calls (their arguments carry no
    /// derivative). Calls that are differentiated later leave the copy unused, and the
    /// optimizer drops it.
    fn keep_primal(&self, h: Function<'ctx>) -> Built<()> {
        let elsewhere = h.users().into_iter().any(|u| !u.is_instruction() || u.parent_block().parent_function() != h);
        if elsewhere && !self.primal_copies.borrow().contains_key(&h) {
            let copy = self.m.clone_function(h, &format!("{}.primal", h.name()))?;
            self.primal_copies.borrow_mut().insert(h, copy);
        }
        Ok(())
    }

    /// The function holding `h`'s primal body: `h` itself, or, once its body moved into
    /// its derivative function (callees generated before the caller that is read), the
    /// copy `keep_primal` made of it.
    pub fn primal_body(&self, h: Function<'ctx>) -> Function<'ctx> {
        match self.primal_copies.borrow().get(&h) {
            Some(&copy) if h.is_declaration() => copy,
            _ => h,
        }
    }

    /// Deletes the original callees, whose bodies moved: their calls were rewritten to
    /// their derivative functions, or go to the copy `keep_primal` made.
    pub fn finish(&self) -> Result<()> {
        let originals: Vec<Function<'ctx>> =
            self.pairs.borrow().keys().chain(self.forwards.borrow().keys()).copied().collect();
        for h in originals {
            if !h.users().is_empty() {
                let Some(&copy) = self.primal_copies.borrow().get(&h) else {
                    return Err(Error::Internal(format!("`{}` is still called after differentiation", h.name())));
                };
                h.as_value().replace_all_uses_with(copy.as_value());
            }
            h.delete_function();
        }
        Ok(())
    }
}

/// Before `ret` of a callee whose callers read the shadow of the memory it returns: that
/// shadow in each lane (`shadows`), into the lane's slot. `nothing` and null are their
/// own shadows; any other value without a shadow is refused here, since the caller
/// would read its derivative from a stand-in that nothing writes.
pub fn write_result_shadows<'ctx>(
    b: &crate::llvm::Builder<'ctx>,
    ret: crate::llvm::Value<'ctx>,
    shadows: &[HashMap<crate::llvm::Value<'ctx>, crate::llvm::Value<'ctx>>],
    slots: &[crate::llvm::Value<'ctx>],
) -> Result<()> {
    let v = ret.operand(0);
    b.before(ret)?;
    for (lane, &slot) in slots.iter().enumerate() {
        let own = crate::analysis::memory::is_nothing(v) || crate::analysis::memory::is_null(v);
        let s = match shadows.get(lane).and_then(|s| s.get(&v)) {
            Some(&s) => s,
            None if own => v,
            None => {
                return Err(Error::Unsupported(format!(
                    "a recursive function that returns memory whose derivative the engine cannot follow (`{}`){}",
                    v.print().trim(),
                    crate::names::where_(ret)
                )))
            }
        };
        b.store(s, slot)?;
    }
    Ok(())
}

fn different_patterns(h: Function) -> Error {
    Error::Unsupported(format!(
        "`{}` is called with different arrays differentiated at different call sites",
        crate::names::julia_name(&h.name())
    ))
}
