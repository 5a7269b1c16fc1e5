//! Shadow memory: which pointers point into memory that carries derivatives. Such
//! memory belongs to a differentiated (`Duplicated`) object argument — an array and its
//! data — and every pointer derived from one (`getelementptr`, casts, phis, selects, a
//! pointer loaded from shadowed memory, such as an array's data pointer) has a *shadow*:
//! the same derivation applied to the shadow object. Floats loaded from shadowed memory
//! are active; floats stored into it are derivative side effects.

use crate::error::{Error, Result};
use crate::llvm::{Call, Function, Opcode, Value};
use crate::request::{Fields, Layout, Leaf};
use crate::symbols::callee_name;
use std::collections::{HashMap, HashSet};

/// Shadowed pointers of one function, with the float type of the memory behind them.
pub struct Memory<'ctx> {
    shadowed: HashMap<Value<'ctx>, Leaf>,
    origin: HashMap<Value<'ctx>, Value<'ctx>>,
    /// For pointers derived from an element loaded from an array's data (an array of
    /// arrays' element, its data pointer, addresses into it), that array (`origins`).
    element_origin: HashMap<Value<'ctx>, Value<'ctx>>,
    /// Integers (and pointers rebuilt from them) holding the address of shadowed memory:
    /// Julia's `ccall`s into BLAS pass array data this way.
    escaped: HashSet<Value<'ctx>>,
    /// Shadowed pointers into an array's *data* (as opposed to the array object, whose
    /// fields are its data pointer, length and sizes).
    data: HashSet<Value<'ctx>>,
    /// Aggregate values (tuples and structs as SSA values, such as the fields of a view
    /// `diff` builds) holding shadowed pointers: where, and what they point to.
    aggregates: HashMap<Value<'ctx>, Paths<'ctx>>,
    /// GC frames whose root slots hold differentiated arrays as objects (a closure, a
    /// tuple of arrays): each has a shadow frame, and addresses of its root slots are
    /// shadowed (not the frame itself, whose header links the thread's frames).
    frames: HashSet<Value<'ctx>>,
    /// The differentiated object arguments (as the function sees them).
    roots: Vec<Value<'ctx>>,
    /// The differentiated arrays a resize call grows or shrinks (their objects), each
    /// with the instruction that may resize it.
    resized: Vec<(Value<'ctx>, Value<'ctx>)>,
    /// The instructions that may resize them (resize calls, and calls of functions that
    /// may resize an array they are handed).
    resize_sites: Vec<Value<'ctx>>,
    /// Arrays without a derivative of their own (a `Const` argument, a global) that a
    /// stack object holds beside differentiated arrays (`vcat(x, c)`, a closure over
    /// `x` and `c`): each is shadowed by a zeroed copy made where it is defined (on
    /// entry for a global), so that every access to it in the function reads and writes
    /// that copy, and whatever derivative it collects is dropped when the call returns.
    copies: HashSet<Value<'ctx>>,
    /// Runtime activity: pointers to memory without a derivative (a `Const` argument's,
    /// a global's) that meet shadowed pointers at a `phi` or `select`. At the merge their
    /// shadow is the pointer itself, so that which memory the merge points into is known
    /// only when it runs: a shadow equal to its primal means "no derivative" (Enzyme's
    /// runtime activity). They stay unshadowed everywhere else.
    inactive: HashSet<Value<'ctx>>,
    /// Those merges and everything derived from them (pointers, and addresses as
    /// integers): their accesses test, when they run, whether the shadow is the primal.
    maybe_constant: HashSet<Value<'ctx>>,
    /// Edges into a merge of aggregates along which a path holds a pointer without a
    /// shadow where the other edges hold a shadowed one: `(phi, predecessor block,
    /// message)`. The derivative stops with the message when it takes such an edge (a
    /// view of an unaliased copy, on the path where a broadcast's arguments alias).
    cut_edges: Vec<(Value<'ctx>, crate::llvm::Block<'ctx>, String)>,
    /// Heap objects the function allocates that hold other such objects (a mutable
    /// struct holding another), with their layouts (`heap_layout`): what a callee handed
    /// one reads it as (`callee_leaf`).
    heap_layouts: HashMap<Value<'ctx>, Fields>,
    /// The module, for the layouts of heap objects (`heap_object_layout`).
    module: &'ctx crate::llvm::Module,
    /// Why a load from a heap object's field was read as no field: an object stored
    /// there awaits its shadow, which a later round of the analysis may give it
    /// (`heap_object_field`). Refused when the last round still says so.
    awaiting: Option<String>,
}

/// The shadowed pointers an aggregate value holds: per index path, the memory type and
/// the pointers that may have been inserted there.
pub type Paths<'ctx> = Vec<Path<'ctx>>;

/// One index path of an aggregate that holds a shadowed pointer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Path<'ctx> {
    /// `insertvalue`/`extractvalue` indices.
    pub index: Vec<u32>,
    /// The memory type behind the pointer.
    pub leaf: Leaf,
    /// The shadowed pointers inserted there (for whether it points at data).
    pub sources: Vec<Value<'ctx>>,
}

/// The paths of aggregate `agg` under `prefix`, with the prefix taken off.
fn paths_under<'ctx>(paths: &Paths<'ctx>, prefix: &[u32]) -> Paths<'ctx> {
    paths
        .iter()
        .filter(|p| p.index.starts_with(prefix) && p.index.len() > prefix.len())
        .map(|p| Path { index: p.index[prefix.len()..].to_vec(), ..p.clone() })
        .collect()
}

/// `paths` with `other`'s merged in (same path: sources united).
fn merge_paths<'ctx>(paths: &mut Paths<'ctx>, other: &Paths<'ctx>) {
    for o in other {
        match paths.iter_mut().find(|p| p.index == o.index) {
            Some(p) => {
                for s in &o.sources {
                    if !p.sources.contains(s) {
                        p.sources.push(*s);
                    }
                }
            }
            None => paths.push(o.clone()),
        }
    }
}

/// What aggregate instruction `i` holds, from what its operands hold (`None`: not an
/// aggregate operation, or nothing shadowed).
fn aggregate_step<'ctx>(
    i: Value<'ctx>,
    shadowed: &HashMap<Value<'ctx>, Leaf>,
    aggregates: &HashMap<Value<'ctx>, Paths<'ctx>>,
) -> Option<Paths<'ctx>> {
    let of = |v: Value<'ctx>| aggregates.get(&v).cloned().unwrap_or_default();
    let paths = match i.opcode() {
        Opcode::LLVMInsertValue => {
            let index = i.indices();
            let mut paths: Paths<'ctx> =
                of(i.operand(0)).into_iter().filter(|p| !p.index.starts_with(&index)).collect();
            let v = i.operand(1);
            if let Some(&leaf) = shadowed.get(&v) {
                paths.push(Path { index: index.clone(), leaf, sources: vec![v] });
            }
            for p in of(v) {
                paths.push(Path { index: [index.clone(), p.index].concat(), ..p });
            }
            paths
        }
        Opcode::LLVMExtractValue if i.ty().is_aggregate() => paths_under(&of(i.operand(0)), &i.indices()),
        Opcode::LLVMPHI | Opcode::LLVMSelect if i.ty().is_aggregate() => {
            let mut paths = Paths::new();
            for v in merged(i) {
                merge_paths(&mut paths, &of(v));
            }
            paths
        }
        _ => return None,
    };
    (!paths.is_empty()).then_some(paths)
}

/// The value inserted at `path` of aggregate `agg`, through a chain of `insertvalue`s:
/// `Some(constant)` when the chain starts from a constant that holds it, `None` when
/// it cannot be told.
fn value_at<'ctx>(agg: Value<'ctx>, path: &[u32]) -> Option<Value<'ctx>> {
    let mut agg = agg;
    let mut path = path.to_vec();
    for _ in 0..64 {
        if agg.is_constant() {
            return Some(agg);
        }
        if !agg.is_instruction() || agg.opcode() != Opcode::LLVMInsertValue {
            return None;
        }
        let index = agg.indices();
        if path.starts_with(&index) {
            agg = agg.operand(1);
            path = path[index.len()..].to_vec();
            if path.is_empty() {
                return Some(agg);
            }
        } else {
            agg = agg.operand(0);
        }
    }
    None
}

pub use crate::julia::{ArrayCall, Resize};

/// Which resizing runtime call `i` is, if any.
pub fn resize_call(i: Value) -> Option<Resize> {
    if i.opcode_if_instruction() != Some(Opcode::LLVMCall) {
        return None;
    }
    crate::julia::current().resize_call(&callee_name(i.as_call()?.called_operand())?)
}

/// Which array-creating runtime call `i` is, if any.
pub fn array_call(i: Value) -> Option<ArrayCall> {
    if i.opcode_if_instruction() != Some(Opcode::LLVMCall) || !i.ty().is_pointer() {
        return None;
    }
    crate::julia::current().array_call(&callee_name(i.as_call()?.called_operand())?)
}

/// Whether call `c` is handed a value `shadowed` holds among its arguments.
fn handed_shadowed<'ctx>(c: Call<'ctx>, shadowed: &HashMap<Value<'ctx>, Leaf>) -> bool {
    (0..c.call_arg_count()).any(|k| shadowed.contains_key(&c.as_value().operand(k)))
}

/// Whether `i` is a splat call or a dynamic call (`ingest::splat_calls`).
pub fn is_splat(i: Value) -> bool {
    i.opcode_if_instruction() == Some(Opcode::LLVMCall)
        && i.as_call().and_then(|c| c.called_function()).is_some_and(|f| crate::names::is_hook_call(&f.name()))
}

/// Whether splat or dynamic call `call`'s result enters a `phi` beside a struct object
/// the function allocates (of a type Julia names in its header, not a float's box):
/// then the call returns that struct (Julia's fallback for `Cell(w, x[k] * s)` when the
/// product, of a captured variable in a `Core.Box`, is not the `Float64` it checked
/// for). The hook gives no shadow of a struct, and refuses such a result when the call
/// runs (`checked_result`); the call has no shadow and the edge from its path into the
/// `phi` is refused when taken (`Memory::cut_edges`), so that the struct built on the
/// other path is followed alone.
pub fn returns_struct_object(call: Value) -> bool {
    if !is_splat(call) || !matches!(hook_result_leaf(call), Leaf::F64 | Leaf::F32) {
        return false;
    }
    // (More than a number's 8 bytes: no box of a number, whatever its type.)
    let struct_object = |v: Value| {
        let base = zero_offset_base(v);
        at_offset_zero(v)
            && own_bytes(base).is_some_and(|n| n > 8)
            && constant_type_tag(base).is_some_and(|t| !matches!(type_leaf(t), Some(Leaf::F64 | Leaf::F32)))
    };
    call.users().into_iter().filter(|u| u.opcode() == Opcode::LLVMPHI).any(|u| merged(u).into_iter().any(struct_object))
}

/// What a splat or dynamic call's result (`is_splat`) is read as: an array of floats
/// when the code loads a pointer at its address (the array's data pointer, once Julia
/// checked its type), else a boxed float; of `Float32` when a load reads 32 bits of the
/// float (as a float, or as an integer copying its bits; through the data pointer for
/// an array), `Float64` otherwise. The runtime hook checks, when the call runs, that the
/// result is what the engine reads it as (`rules::calls::splat`).
pub fn hook_result_leaf(call: Value) -> Leaf {
    // (What ingestion decided when it folded the checks for other types:
    // `refused_type_checks`.)
    if let Some(leaf) = crate::names::asserted_result(call) {
        return leaf;
    }
    // (What Julia checks the result's type against, when the checks agree: a type
    // assertion, `vcat(x...)::Vector{Float64}`.)
    let reads = crate::rules::calls::splat::result_and_merges(call);
    let checked: Vec<Leaf> = reads.iter().flat_map(|&r| checked_types(r)).filter_map(type_leaf).collect();
    if let Some(&first) = checked.first() {
        if checked.iter().all(|&l| l == first) {
            return first;
        }
    }
    // (The first load through `p`, a pointer, or through an address derived from it,
    // for which `wanted` holds.)
    fn load_through<'ctx>(p: Value<'ctx>, wanted: impl Fn(Value<'ctx>) -> bool) -> Option<Value<'ctx>> {
        let mut work = vec![p];
        let mut seen = HashSet::new();
        while let Some(p) = work.pop() {
            if !seen.insert(p) {
                continue;
            }
            for u in p.users() {
                match u.opcode() {
                    Opcode::LLVMBitCast | Opcode::LLVMAddrSpaceCast | Opcode::LLVMGetElementPtr => work.push(u),
                    Opcode::LLVMLoad if wanted(u) => return Some(u),
                    _ => {}
                }
            }
        }
        None
    }
    let reads_32_bits = |p: Value| {
        load_through(p, |u| u.ty().float_bits() == 32 || u.ty().is_int() && u.ty().int_width() == 32).is_some()
    };
    match reads.iter().find_map(|&r| load_through(r, |u| u.ty().is_pointer() && at_offset_zero(u.operand(0)))) {
        Some(data) if reads_32_bits(data) => Leaf::ArrayF32,
        Some(_) => Leaf::ArrayF64,
        None if reads.iter().any(|&r| reads_32_bits(r)) => Leaf::F32,
        None => stored_beside_arrays(call).unwrap_or(Leaf::F64),
    }
}

/// For a result the code stores into an object of one field the function allocates (a
/// closure's `Core.Box`, holding a variable whose type inference gives up on) without
/// reading it there itself: the kind of array of floats the function allocates and
/// stores into that object too (`v = [x[1], x[2]]`, then `v = v * x[1]` in the
/// closure), if any; the result is read as one, as the loads of the object's field read
/// the arrays stored there.
fn stored_beside_arrays(call: Value) -> Option<Leaf> {
    let objects: Vec<Value> = call
        .users()
        .into_iter()
        .filter(|u| u.opcode() == Opcode::LLVMStore && u.operand(0) == call)
        .filter_map(|u| object_base(u.operand(1)))
        .filter(|&o| own_bytes(o) == Some(8))
        .collect();
    let mut found = None;
    each_store_into(&objects, |_, _, u| {
        let leaf = float_array_allocation_by_type(zero_offset_base(u.operand(0)));
        found = found.or(leaf);
        true
    });
    found
}

/// How a pointer-typed instruction derives from its operands, for shadowing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PointerOp {
    /// `getelementptr`, `addrspacecast`, `bitcast`: the same on the shadow.
    Derive,
    /// A pointer loaded from shadowed memory: loaded from the shadow memory.
    Load,
    /// `phi` or `select` of pointers.
    Merge,
}

/// How instruction `i` derives a pointer, if it does (`None` for anything else: an
/// argument, a constant, a merge's operand that is one).
pub fn pointer_op(i: Value) -> Option<PointerOp> {
    if !i.ty().is_pointer() {
        return None;
    }
    match i.opcode_if_instruction()? {
        Opcode::LLVMGetElementPtr | Opcode::LLVMAddrSpaceCast | Opcode::LLVMBitCast => Some(PointerOp::Derive),
        Opcode::LLVMLoad => Some(PointerOp::Load),
        Opcode::LLVMPHI | Opcode::LLVMSelect => Some(PointerOp::Merge),
        _ => None,
    }
}

/// The pointer operands a merge chooses from.
pub fn merged(i: Value) -> Vec<Value> {
    match i.as_phi() {
        Some(phi) => phi.incoming().into_iter().map(|(v, _)| v).collect(),
        None => vec![i.operand(1), i.operand(2)],
    }
}

impl<'ctx> Memory<'ctx> {
    /// Propagates shadows from the differentiated object arguments `roots` and the
    /// arrays allocated in `f` that hold derivatives (`allocations`) through `f`.
    pub fn compute(
        m: &'ctx crate::llvm::Module,
        f: Function<'ctx>,
        roots: &[(Value<'ctx>, Leaf)],
        maybe_constant_roots: &[Value<'ctx>],
        allocations: &HashMap<Value<'ctx>, Leaf>,
        user: &str,
    ) -> Result<Memory<'ctx>> {
        let mut shadowed: HashMap<Value<'ctx>, Leaf> = roots.iter().copied().collect();
        let is_frame = |a: Value<'ctx>| a.opcode_if_instruction() == Some(Opcode::LLVMAlloca) && is_gc_frame(a);
        let mut frames: HashSet<Value<'ctx>> = allocations.keys().copied().filter(|&a| is_frame(a)).collect();
        frames.retain(|&a| shadowable_stack_object(a));
        shadowed.extend(allocations.iter().filter(|(&k, _)| !is_frame(k)).map(|(k, v)| (*k, *v)));
        let insts: Vec<Value<'ctx>> = f.blocks().into_iter().flat_map(|b| b.instructions()).collect();
        let (origin, element_origin) = origins(&insts);
        let mut aggregates: HashMap<Value<'ctx>, Paths<'ctx>> = HashMap::new();
        // Loads through a merge of object addresses decided before every address was
        // known (a loop's back edge): checked again once all are (`merged_loaded_field`).
        let mut provisional: Vec<Value<'ctx>> = Vec::new();
        // A load read as no field because an object stored there awaits its shadow (the
        // last pass's; `heap_object_field`): the refusal, if no later round of the
        // analysis gives it one (`pipeline::analyze`).
        let mut awaiting: Option<String> = None;
        let mut changed = true;
        while changed {
            changed = false;
            awaiting = None;
            for &i in &insts {
                if shadowed.contains_key(&i) {
                    continue;
                }
                // Aggregates: which paths hold shadowed pointers; a pointer taken out of
                // one of those paths is shadowed.
                if let Some(paths) = aggregate_step(i, &shadowed, &aggregates) {
                    if aggregates.get(&i) != Some(&paths) {
                        aggregates.insert(i, paths);
                        changed = true;
                    }
                }
                if i.opcode() == Opcode::LLVMExtractValue && i.ty().is_pointer() {
                    let index = i.indices();
                    let leaf = aggregates.get(&i.operand(0)).and_then(|ps| ps.iter().find(|p| p.index == index));
                    if let Some(p) = leaf {
                        shadowed.insert(i, p.leaf);
                        changed = true;
                    }
                    continue;
                }
                let from = match pointer_op(i) {
                    Some(PointerOp::Derive) if root_slot_of(i, &frames) => Some(Leaf::StackArraysF64),
                    // An object's type tag is no field of it.
                    Some(PointerOp::Derive) if is_object_header(i) => None,
                    Some(PointerOp::Derive) => shadowed.get(&i.operand(0)).copied(),
                    // What a stack object holds are array objects; what a struct object
                    // holds, what its layout says of the field.
                    Some(PointerOp::Load) => match shadowed.get(&i.operand(0)).copied() {
                        Some(Leaf::StackArraysF64 | Leaf::StackMixedF64) => {
                            stack_object_field(m, i, &insts, &shadowed, user, &mut awaiting)?
                        }
                        // (Through a merge of field addresses of objects of different
                        // layouts, each read by its own: a loop over a list whose first
                        // node a model holds, `p = m.head` then `p = p.next`.)
                        Some(Leaf::Object(fields)) if pointer_op(i.operand(0)) == Some(PointerOp::Merge) => {
                            let (leaf, complete) = merged_loaded_field(m, i, fields, &shadowed, user)?;
                            if !complete {
                                provisional.push(i);
                            }
                            leaf
                        }
                        Some(Leaf::Object(fields)) => loaded_field(m, i, fields, user)?,
                        // An array of struct objects: its data pointer, then an element.
                        // (Any other pointer in the array object is its owner, an array of
                        // the same kind, which a store into it hands the write barrier.)
                        Some(Leaf::Objects(fields)) if at_offset_zero(i.operand(0)) => Some(Leaf::ObjectsData(fields)),
                        Some(l @ Leaf::Objects(_)) => Some(l),
                        Some(Leaf::ObjectsData(fields)) => Some(Leaf::Object(fields)),
                        l => l,
                    },
                    Some(PointerOp::Merge) => forwarded_object_merge(m, i, &origin, &shadowed)
                        .map(|(_, fields)| Leaf::Object(fields))
                        .or_else(|| merged(i).iter().find_map(|v| shadowed.get(v).copied())),
                    // A copy or a reshape of a differentiated array is differentiated.
                    None => match array_call(i) {
                        Some(ArrayCall::Copy) => shadowed.get(&i.operand(0)).copied(),
                        Some(ArrayCall::Reshape) => shadowed.get(&i.operand(1)).copied(),
                        // Splatting differentiated collections: the result, a boxed
                        // float or an array of floats, has a shadow box or array
                        // (`rules::Rule::Splat`).
                        _ if is_splat(i) && i.as_call().is_some_and(|c| handed_shadowed(c, &shadowed)) => {
                            (!returns_struct_object(i)).then(|| hook_result_leaf(i))
                        }
                        // An array a user's rule returns, given differentiated memory: the
                        // rule makes its shadow (`rules::calls::custom`; a rule given
                        // differentiated numbers only asks for one through activity).
                        // (Or a callee differentiated call by call returns it: its
                        // derivative functions hand its shadow back, `transform::calls`.)
                        _ => crate::names::rule_array_result(i)
                            .filter(|_| i.as_call().is_some_and(|c| handed_shadowed(c, &shadowed)))
                            .or_else(|| callee_result_leaf(m, i, &shadowed)),
                    },
                };
                if let Some(leaf) = from {
                    shadowed.insert(i, leaf);
                    changed = true;
                }
                // An array allocated here that merges with shadowed memory (an empty
                // result on one path, a filled one on the other) may hold derivative
                // data too: it gets a shadow of its own. So does a copy of an array
                // without a derivative (`x = copy(b)` before a loop that sets `x = A * x`:
                // a zeroed copy, `transform::shadow`), and an array a rule returns (the
                // rule makes its shadow, from constant arguments a zero one).
                if let (Some(leaf), Some(PointerOp::Merge)) = (shadowed.get(&i).copied(), pointer_op(i)) {
                    for v in merged(i) {
                        // (Or the data pointer of such an array, loaded at its own
                        // address: the arrays of arrays two branches build.)
                        let data_of = |v: Value<'ctx>| {
                            (v.opcode_if_instruction() == Some(Opcode::LLVMLoad) && at_offset_zero(v.operand(0)))
                                .then(|| zero_offset_base(v.operand(0)))
                                .filter(|o| array_call(*o).is_some() && matches!(leaf, Leaf::ArrayF64 | Leaf::ArrayF32))
                        };
                        // (Or a box of a float the function allocates, merged with a
                        // dynamic call's result: a variable inference gives up on, `s =
                        // 0.0` then `s += f(v)` in a loop.)
                        let fresh = |base: Value<'ctx>| {
                            matches!(array_call(base), Some(ArrayCall::Alloc | ArrayCall::Copy))
                                || crate::names::rule_array_result(base).is_some()
                                || matches!(leaf, Leaf::F64 | Leaf::F32)
                                    && constant_type_tag(base).and_then(type_leaf) == Some(leaf)
                        };
                        // (Or a merge of fresh arrays beside shadowed memory: the arrays the
                        // branches of a recursive function make, merged with what its
                        // recursive call returns. It gets its leaf from them next round.)
                        let bases = match pointer_op(v) {
                            Some(PointerOp::Merge)
                                if !shadowed.contains_key(&v) && matches!(leaf, Leaf::ArrayF64 | Leaf::ArrayF32) =>
                            {
                                merged(v).into_iter().map(zero_offset_base).filter(|b| fresh(*b)).collect()
                            }
                            _ => vec![data_of(v).unwrap_or_else(|| zero_offset_base(v))],
                        };
                        for base in bases {
                            if !shadowed.contains_key(&base) && fresh(base) {
                                shadowed.insert(base, leaf);
                                changed = true;
                            }
                        }
                        // (Or an array the function allocates that an array is loaded from:
                        // an array of arrays, whose first element LLVM forwards to the loop
                        // that reads them all, `for v in [x .* 2, x[1:2]]`.)
                        let loaded_from = (v.opcode_if_instruction() == Some(Opcode::LLVMLoad))
                            .then(|| origin.get(&v.operand(0)).copied())
                            .flatten()
                            .filter(|o| array_call(*o) == Some(ArrayCall::Alloc));
                        if let Some(o) = loaded_from.filter(|o| !shadowed.contains_key(o)) {
                            if matches!(leaf, Leaf::ArrayF64 | Leaf::ArrayF32) {
                                shadowed.insert(o, leaf);
                                changed = true;
                            }
                            // (Likewise an array of struct objects, `for l in [Layer(...),
                            // Layer(...)]`: `forwarded_object_merge`.)
                            if let Leaf::Object(fields) = leaf {
                                shadowed.insert(o, Leaf::Objects(fields));
                                changed = true;
                            }
                        }
                        // Likewise a GC frame an array is loaded from (the tuple of arrays
                        // `vcat` reads at a variable index): its root slots hold
                        // differentiated arrays (a store of another pointer into one is
                        // refused, `untracked`). Other stack objects stay without shadow
                        // here (a view written into a result slot on the path where a
                        // broadcast's arguments alias: refused when reached, `cut_edges`).
                        if v.opcode_if_instruction() == Some(Opcode::LLVMLoad) && !shadowed.contains_key(&v) {
                            let frame = |a: &Value<'ctx>| is_gc_frame(*a) && shadowable_stack_object(*a);
                            if let Some(a) = alloca_base(v.operand(0)).filter(frame) {
                                changed |= frames.insert(a);
                            }
                        }
                    }
                }
            }
        }
        // A load through a merge of object addresses decided before all of them were
        // known reads what every one of them says now.
        for &i in &provisional {
            if let Some(Leaf::Object(fields)) = shadowed.get(&i.operand(0)).copied() {
                let (leaf, _) = merged_loaded_field(m, i, fields, &shadowed, user)?;
                if leaf != shadowed.get(&i).copied() {
                    return Err(loaded_field_error(i, "fields of different kinds", user));
                }
            }
        }
        // A pointer loaded from a stack object was read by what had been stored there when
        // the load was reached; what is stored there in the end must say the same.
        for &i in &insts {
            let from_stack_object =
                || shadowed.get(&i.operand(0)).is_some_and(|l| l.is_stack_object()) && shadowed.contains_key(&i);
            if pointer_op(i) == Some(PointerOp::Load)
                && from_stack_object()
                && shadowed.get(&i) != stack_object_field(m, i, &insts, &shadowed, user, &mut awaiting)?.as_ref()
            {
                return Err(Error::Unsupported(format!(
                    "a struct, tuple or closure whose differentiated contents could not be told apart (`{}`), in \
                     `{user}`{}",
                    i.print().trim(),
                    crate::names::where_(i)
                )));
            }
        }
        // A merge of struct objects must be of one layout: a pointer loaded from the merge
        // is read by the layout of its fields.
        for &i in &insts {
            let layout = |l: &&Leaf| matches!(l, Leaf::Object(_) | Leaf::Objects(_) | Leaf::ObjectsData(_));
            if let (Some(PointerOp::Merge), Some(&leaf)) = (pointer_op(i), shadowed.get(&i).filter(layout)) {
                // (A heap object of the same layout, forwarded: `forwarded_object_merge`;
                // or a merge of such objects, the boxes of a closure's `Core.Box`.)
                let one_object = |v: Value<'ctx>| {
                    Leaf::Object(crate::request::intern(
                        &heap_layout(m, zero_offset_base(v), &shadowed, 4).unwrap_or_default(),
                    )) == leaf
                        && is_heap_object(v, &shadowed)
                };
                let same_object = |v: &Value<'ctx>| {
                    let (mut seen, mut work) = (HashSet::new(), vec![*v]);
                    while let Some(w) = work.pop() {
                        if !seen.insert(w) {
                            continue;
                        }
                        match pointer_op(w) {
                            Some(PointerOp::Merge) if w != i => work.extend(merged(w)),
                            _ if w == i || shadowed.get(&w) == Some(&leaf) => {}
                            _ if !one_object(w) => return false,
                            _ => {}
                        }
                    }
                    true
                };
                // (Or a merge of addresses into struct objects that only pointer loads
                // read, each by every address's own layout: `merged_loaded_field`.)
                let loads_only = matches!(leaf, Leaf::Object(_))
                    && merged(i).iter().all(|v| *v == i || matches!(shadowed.get(v), Some(Leaf::Object(_))))
                    && i.users().iter().all(|u| {
                        u.opcode_if_instruction() == Some(Opcode::LLVMLoad) && u.operand(0) == i && u.ty().is_pointer()
                    });
                if !loads_only
                    && merged(i).iter().any(|v| shadowed.get(v).is_some_and(|l| *l != leaf) && !same_object(v))
                {
                    return Err(Error::Unsupported(format!(
                        "a pointer that may point to struct objects of different types, or to an array of them \
                         and into its data, in `{user}`{}",
                        crate::names::where_(i)
                    )));
                }
            }
        }
        // A merge of shadowed memory and memory without a derivative that `Const` data
        // leads to: runtime activity, the other side being its own shadow (`inactive`).
        // Other memory has no shadow for the other side.
        let mut inactive: HashSet<Value<'ctx>> = HashSet::new();
        // (A callee's parameter that a caller may pass such a merge in, with the
        // pointer itself as shadow, is tested alike: `transform::calls::Pattern`.)
        let mut chooses: HashSet<Value<'ctx>> = maybe_constant_roots.iter().copied().collect();
        let mut cut_edges = Vec::new();
        for &i in &insts {
            if pointer_op(i) == Some(PointerOp::Merge) && shadowed.contains_key(&i) {
                // (`nothing`, the end of a list or a field not filled yet, is never read
                // through: its shadow is itself, `transform::shadow`.)
                for v in merged(i) {
                    if !shadowed.contains_key(&v) && !is_null(v) && !is_nothing(v) && constant_data(v, &shadowed) {
                        inactive.insert(v);
                        chooses.insert(i);
                    }
                }
                let other = |v: &Value<'ctx>| {
                    !shadowed.contains_key(v) && !is_null(*v) && !is_nothing(*v) && !inactive.contains(v)
                };
                // The result of a call Julia dispatches at run time, entering a phi beside
                // a differentiated array (`gemm_wrapper!`'s fallback for strided matrices,
                // which `A * B'` does not take: the call returns `C`): the edge from that
                // call's path is refused when taken, as the call itself is.
                // (Or a struct object a dynamic call returns, beside the one the function
                // builds on the other path: `returns_struct_object`.)
                let dynamic = |v: Value<'ctx>| {
                    v.opcode_if_instruction() == Some(Opcode::LLVMCall)
                        && v.as_call()
                            .and_then(|c| callee_name(c.called_operand()))
                            .is_some_and(|n| crate::julia::current().dynamic_calls.contains(&n.as_str()))
                        || returns_struct_object(v)
                };
                if let Some(phi) = i.as_phi() {
                    let incoming = phi.incoming();
                    let others: Vec<_> = incoming.iter().filter(|(v, _)| other(v)).collect();
                    if !others.is_empty() && others.iter().all(|(v, _)| dynamic(*v)) {
                        for (v, b) in others {
                            let message = if returns_struct_object(*v) {
                                format!(
                                    "a call Julia dispatches when it runs, whose result is a struct (Julia's \
                                     fallback where it could not infer a type), in `{user}`{}",
                                    crate::names::where_(*v)
                                )
                            } else {
                                format!(
                                    "a call Julia dispatches when it runs (`{}`), whose result may be a \
                                     differentiated array, in `{user}`{}",
                                    callee_name(v.as_call().expect("a call").called_operand()).unwrap_or_default(),
                                    crate::names::where_(*v)
                                )
                            };
                            cut_edges.push((i, *b, message));
                        }
                        continue;
                    }
                }
                // (Unless a load merged here was read as no field this round, its object
                // awaiting a shadow: the next round reads it again, `awaiting`.)
                if let Some(other) = merged(i).into_iter().find(other).filter(|_| awaiting.is_none()) {
                    let refusal = format!(
                        "a pointer that may point into a differentiated array or into other memory ({}), in `{user}`{}",
                        other.print().trim(),
                        crate::names::where_(i)
                    );
                    // (An object or array the function allocates may get its shadow in a
                    // later round, once what it holds is differentiated: a struct built
                    // on each side of a branch, one of them from an array that a copy
                    // made differentiated a round later. The refusal waits for it.)
                    let mut base = other;
                    while pointer_op(base) == Some(PointerOp::Derive) {
                        base = base.operand(0);
                    }
                    let fresh_object = gc_allocation(base).is_some();
                    if fresh_object && !stored_into(base) {
                        // (An object only the runtime or C code fills, that never gets a
                        // shadow: the `BigInt` a sum returns on the path for an array of
                        // them, beside a float's box, in a union split over the element
                        // types a comprehension may have. Refused if the run takes that
                        // path, which it never does for floats.)
                        if let Some(phi) = i.as_phi() {
                            for (_, b) in phi.incoming().into_iter().filter(|(v, _)| *v == other) {
                                cut_edges.push((i, b, refusal.clone()));
                            }
                            continue;
                        }
                    }
                    // (So may a call Julia dispatches when it runs, once it is handed
                    // shadowed memory: a heap object holding a closure's `Core.Box`; and a
                    // merge of such results, a loop's accumulator, `hook_boxes`.)
                    // (Or a load from a field of an object the function allocates that has
                    // no shadow yet: a closure's `Core.Box`, which gets one once the boxes
                    // stored into it have theirs, read before a second loop that updates
                    // it.)
                    let unshadowed_field = pointer_op(other) == Some(PointerOp::Load)
                        && object_base(other.operand(0))
                            .is_some_and(|o| gc_allocation(o).is_some() && !shadowed.contains_key(&o));
                    if fresh_object
                        || array_call(base) == Some(ArrayCall::Alloc)
                        || is_splat(base)
                        || hook_boxes(base)
                        || unshadowed_field
                    {
                        awaiting = Some(refusal);
                        continue;
                    }
                    return Err(Error::Unsupported(refusal));
                }
            }
        }
        // A merge of aggregates must agree on what each path holds: a shadowed pointer on
        // one side and another pointer on the other has no shadow for the other side.
        for &i in &insts {
            let Some(paths) = aggregates.get(&i).filter(|_| matches!(i.opcode(), Opcode::LLVMPHI | Opcode::LLVMSelect))
            else {
                continue;
            };
            let incoming: Vec<(Value<'ctx>, Option<crate::llvm::Block<'ctx>>)> = match i.as_phi() {
                Some(phi) => phi.incoming().into_iter().map(|(v, b)| (v, Some(b))).collect(),
                None => merged(i).into_iter().map(|v| (v, None)).collect(),
            };
            for (v, from) in incoming {
                let has = |p: &Path<'ctx>| aggregates.get(&v).is_some_and(|ps| ps.iter().any(|q| q.index == p.index));
                let constant = |p: &Path<'ctx>| value_at(v, &p.index).is_some_and(|x| x.is_constant());
                if let Some(p) = paths.iter().find(|p| !has(p) && !constant(p)) {
                    let message = format!(
                        "a tuple or struct (a view, say) that holds a differentiated array on one path and other \
                         memory on this one (field {:?}), in `{user}`{}",
                        p.index,
                        crate::names::where_(i)
                    );
                    match from {
                        Some(b) => cut_edges.push((i, b, message)),
                        None => return Err(Error::Unsupported(message)),
                    }
                }
            }
        }
        let escaped = escaped_addresses(&insts, &shadowed);
        let maybe_constant = derived_from(&insts, &chooses);
        refuse_runtime_activity_escapes(m, &insts, &maybe_constant, &frames, user)?;
        let containers: Vec<(Value<'ctx>, Leaf)> =
            roots.iter().copied().chain(allocations.iter().map(|(k, v)| (*k, *v))).collect();
        let data = data_pointers(&insts, &shadowed, &containers, &aggregates);
        let roots = roots.iter().map(|(v, _)| *v).collect();
        let copies = allocations.keys().copied().filter(|&a| is_zero_copy(a)).collect();
        // Arrays resized here, or handed to a function (differentiated call by call)
        // that may resize them. (A function declared inactive changes no differentiated
        // memory, whatever it resizes: `put!` of a task into a `@sync` block's channel.)
        let resized_at: Vec<(Value<'ctx>, Value<'ctx>)> = insts
            .iter()
            .flat_map(|&i| {
                let args: Vec<Value<'ctx>> = if resize_call(i).is_some() {
                    vec![i.operand(0)]
                } else if let Some(call) = i.as_call().filter(|c| {
                    i.opcode() == Opcode::LLVMCall
                        && !c.has_fn_attr("noreturn")
                        && !crate::inactive::is_inactive_call(i)
                }) {
                    // (The callee's body is scanned only when it is handed a shadowed array.)
                    let handed: Vec<Value<'ctx>> =
                        (0..call.call_arg_count()).map(|k| i.operand(k)).filter(|a| shadowed.contains_key(a)).collect();
                    let resizes = !handed.is_empty() && may_resize(m, call.called_operand(), &mut HashSet::new());
                    if resizes {
                        handed
                    } else {
                        Vec::new()
                    }
                } else {
                    Vec::new()
                };
                args.into_iter().filter(|a| shadowed.contains_key(a)).map(move |a| (i, zero_offset_base(a)))
            })
            .collect();
        let resized = resized_at.clone();
        let mut resize_sites: Vec<Value<'ctx>> = resized_at.iter().map(|&(i, _)| i).collect();
        resize_sites.dedup();
        let heap_layouts = shadowed
            .iter()
            .filter(|(v, l)| l.is_stack_object() && gc_allocation(**v).is_some())
            .filter_map(|(v, _)| {
                let layout = heap_layout(m, *v, &shadowed, 4)?;
                layout
                    .iter()
                    .any(|(_, l)| matches!(l, Layout::Object(_) | Layout::SelfRef))
                    .then(|| (*v, crate::request::intern(&layout)))
            })
            .collect();
        Ok(Memory {
            module: m,
            awaiting,
            heap_layouts,
            shadowed,
            origin,
            element_origin,
            escaped,
            data,
            aggregates,
            frames,
            roots,
            resized,
            resize_sites,
            copies,
            inactive,
            maybe_constant,
            cut_edges,
        })
    }

    /// Why a load was read as no field for want of a shadow this round (`awaiting`):
    /// the refusal, if no later round gives one.
    pub fn awaiting(&self) -> Option<&str> {
        self.awaiting.as_deref()
    }

    /// The array object whose data pointer `v` is: a load of the pointer from the object,
    /// or a merge of such loads from one object (the data pointer before and after a
    /// `push!`). `None` for anything else.
    pub fn data_pointer_of(&self, v: Value<'ctx>) -> Option<Value<'ctx>> {
        self.data_pointer_in(v, 8)
    }

    /// Whether store `i` puts a differentiated array object into the data of an array of
    /// arrays (one the function builds: `[x .* 2, x .+ 1]`, `push!(vs, v)` in a loop), of
    /// the same float type: the array's shadow then holds
    /// the stored array's shadow at the same place (`transform::shadow` stores it there),
    /// so a pointer loaded from its data is an array with a shadow, at any index. Every
    /// other pointer stored into shadowed memory is refused (`untracked`), which keeps
    /// that true. Also into a differentiated argument's array of arrays (`vs[1] = x .* 2`):
    /// its shadow, the caller's, may be old, so the shadow store is followed by the
    /// collector's write barrier (`array_store_owner`).
    pub fn mirrors_array_store(&self, i: Value<'ctx>) -> bool {
        self.array_store_owner(i).is_some()
    }

    /// Whether store `i` writes a boxed float with a shadow box (a dynamic call's result,
    /// or a merge of them, `boxed_hook_result`; or a box the function allocates) into the
    /// only field of an object read by its layout as a box of that float
    /// (`Leaf::Object`, `box_field`): a closure's `Core.Box` that Julia keeps in a GC
    /// frame slot and loads back, `u = u * 0.5 + cos(v)` in a closure handed to
    /// `foreach`, with `u` typed or not. The shadow box goes into the shadow object
    /// (`transform::shadow`, with the collector's write barrier: the shadow object may be
    /// old), so a load of the field reads a box with a shadow, as its layout says.
    pub fn mirrors_box_store(&self, i: Value<'ctx>) -> bool {
        if i.opcode_if_instruction() != Some(Opcode::LLVMStore) || !at_offset_zero(i.operand(1)) {
            return false;
        }
        let (v, p) = (i.operand(0), i.operand(1));
        let Some(field) = self.box_field(p) else { return false };
        // (Or a box of a float the function allocates, with a shadow: the new value of
        // a variable declared `local u::Float64`.)
        let fresh_box = || {
            at_offset_zero(v)
                && gc_allocation(zero_offset_base(v)).is_some()
                && self.leaf(v).is_some_and(Leaf::is_stack_object)
                && constant_type_tag(zero_offset_base(v)).and_then(type_leaf) == Some(field)
        };
        match self.leaf(v) {
            Some(l @ (Leaf::F64 | Leaf::F32)) => l == field && boxed_hook_result(v, l),
            Some(_) => fresh_box(),
            None => false,
        }
    }

    /// Whether store `i` writes a pointer with a shadow into a field of a struct object
    /// read by its layout (`Leaf::Object`, a `Duplicated` mutable struct, or one loaded
    /// from another's field) that holds what the pointer is: an array of floats
    /// (`m.cache = m.w .* x[1]`), or a struct object of the field's layout, read from
    /// elsewhere or one the function allocates (`o.inner = Inner(x[1], x[2])`). As
    /// Enzyme does, the shadow pointer goes into the shadow object's field
    /// (`transform::shadow`, with the collector's write barrier: the shadow object,
    /// the caller's, may be old), so a load of the field reads memory with a shadow, as
    /// the layout says. Returns the field's byte offset in the object (the shadow
    /// object the barrier is for starts that far before the shadow field). (A
    /// `Core.Box`'s only field holds a boxed float: `mirrors_box_store`.)
    pub fn mirrors_field_store(&self, i: Value<'ctx>) -> Option<i64> {
        if i.opcode_if_instruction() != Some(Opcode::LLVMStore) {
            return None;
        }
        let (v, p) = (i.operand(0), i.operand(1));
        let Some(Leaf::Object(fields)) = self.leaf(p) else { return None };
        if !v.ty().is_pointer() || self.box_field(p).is_some() {
            return None;
        }
        let (_, offset) = constant_field(self.module, p)?;
        let (_, layout) = fields.iter().find(|(at, _)| *at as i64 == offset)?;
        // (An array of integers or of names has a zero shadow, never written here.)
        if let Layout::Array(element) = layout {
            if matches!(element.as_slice(), [(0, Layout::Integer | Layout::Pointer | Layout::Inactive)]) {
                return None;
            }
        }
        let wanted = layout.pointee_leaf_in(fields)?;
        let fits = match wanted {
            Leaf::ArrayF64 | Leaf::ArrayF32 => self.leaf(v) == Some(wanted) && !self.is_data(v),
            Leaf::Object(f) => {
                self.leaf(v) == Some(wanted) || self.heap_object_layout(v).is_some_and(|g| lays_out_as(g, f))
            }
            _ => false,
        };
        fits.then_some(offset)
    }

    /// Whether address `p` is a field of a struct object read by its layout
    /// (`Leaf::Object`) that holds a struct object: a heap object the function
    /// allocates may be stored there (`Memory::can_mirror`), whose layout
    /// `mirrors_field_store` then checks.
    fn object_field(&self, p: Value<'ctx>) -> bool {
        let Some(Leaf::Object(fields)) = self.leaf(p) else { return false };
        constant_field(self.module, p).is_some_and(|(_, offset)| {
            fields.iter().any(|(at, l)| *at as i64 == offset && matches!(l, Layout::Object(_) | Layout::SelfRef))
        })
    }

    /// The float type of the box that address `p` holds, when `p` is the only field of
    /// an object read by its layout as a box of a boxed float (`Leaf::Object`): a
    /// `Core.Box` loaded back from a GC frame slot (`mirrors_box_store`).
    fn box_field(&self, p: Value<'ctx>) -> Option<Leaf> {
        let Some(Leaf::Object(fields)) = self.leaf(p) else { return None };
        if !at_offset_zero(p) {
            return None;
        }
        match fields {
            [(0, Layout::Object(inner))] => match inner.as_slice() {
                [(0, Layout::F64)] => Some(Leaf::F64),
                [(0, Layout::F32)] => Some(Leaf::F32),
                _ => None,
            },
            _ => None,
        }
    }

    /// For a store `mirrors_array_store` accepts, the (shadowed) address of the array it
    /// stores into, and whether the function allocated that array (otherwise its shadow, the caller's, may be old,
    /// and the shadow store needs the collector's write barrier: `transform::shadow`).
    pub fn array_store_owner(&self, i: Value<'ctx>) -> Option<(Value<'ctx>, bool)> {
        if i.opcode_if_instruction() != Some(Opcode::LLVMStore) {
            return None;
        }
        let (v, p) = (i.operand(0), i.operand(1));
        let (Some(element), Some(data)) = (self.leaf(v), self.leaf(p)) else { return None };
        // (Or a heap object the function allocates into an array of them it allocates.)
        if let Leaf::ObjectsData(fields) = data {
            let owner = self.allocated_array(p)?;
            let layout = self.heap_object_layout(v)?;
            return (layout == fields && self.is_shadowed(owner)).then_some((owner, true));
        }
        if !matches!(element, Leaf::ArrayF64 | Leaf::ArrayF32) || self.is_data(v) || element != data {
            return None;
        }
        let (owner, address) = self.array_data_owner(p)?;
        Some((address, matches!(array_call(owner), Some(ArrayCall::Alloc | ArrayCall::Copy))))
    }

    /// The array whose data shadowed pointer `p` points into, for an array of floats or
    /// of arrays (`None` for any other memory, or an address whose array is not known):
    /// the array object without casts, and the shadowed address its data pointer was
    /// loaded from (the object, perhaps cast).
    pub fn array_data_owner(&self, p: Value<'ctx>) -> Option<(Value<'ctx>, Value<'ctx>)> {
        if !self.is_data(p) || !matches!(self.leaf(p), Some(Leaf::ArrayF64 | Leaf::ArrayF32)) {
            return None;
        }
        let (o, mut load) = self.data_pointer_under(p)?;
        while pointer_op(load) == Some(PointerOp::Merge) {
            load = merged(load).into_iter().find(|&v| v != load && self.data_pointer_of(v) == Some(o))?;
        }
        let address = load.operand(0);
        self.is_shadowed(address).then_some((o, address))
    }

    /// The array whose data `p` points into, through GEPs and casts, and the data pointer
    /// `p` is derived from (`None` when `p` is not derived from a data pointer).
    pub fn data_pointer_under(&self, p: Value<'ctx>) -> Option<(Value<'ctx>, Value<'ctx>)> {
        let mut q = p;
        for _ in 0..16 {
            if let Some(o) = self.data_pointer_of(q) {
                return Some((o, q));
            }
            match q.opcode_if_instruction()? {
                Opcode::LLVMGetElementPtr | Opcode::LLVMBitCast | Opcode::LLVMAddrSpaceCast => q = q.operand(0),
                _ => return None,
            }
        }
        None
    }

    /// Whether the function resizes a differentiated array.
    pub fn resizes(&self) -> bool {
        !self.resized.is_empty()
    }

    /// The instructions that may resize a differentiated array (`resized`).
    pub fn resize_sites(&self) -> &[Value<'ctx>] {
        &self.resize_sites
    }

    /// `data_pointer_of(v)`, when that array may be one the function resizes: the same
    /// object as one of those resized, or one that may alias it (only an array allocated
    /// here is surely distinct from another array allocated here or from an argument).
    pub fn resized_data_pointer(&self, v: Value<'ctx>) -> Option<Value<'ctx>> {
        let o = self.data_pointer_of(v).or_else(|| self.data_address_of(v))?;
        (!self.resize_sites_of(v).is_empty()).then_some(o)
    }

    /// The instructions that may resize the array whose data pointer `v` is
    /// (`resized_data_pointer`): none when it is surely none of the arrays resized.
    pub fn resize_sites_of(&self, v: Value<'ctx>) -> Vec<Value<'ctx>> {
        let Some(o) = self.data_pointer_of(v).or_else(|| self.data_address_of(v)) else { return Vec::new() };
        let fresh = |a: Value<'ctx>| a.is_instruction() && array_call(a).is_some();
        let argument = |a: Value<'ctx>| a.is_argument() || self.roots.iter().any(|&r| zero_offset_base(r) == a);
        let distinct =
            |a: Value<'ctx>, b: Value<'ctx>| fresh(a) && (fresh(b) || argument(b)) || fresh(b) && argument(a);
        // (Or an array that existed when the call began, a field of an immutable
        // argument, and one the function's own object only ever holds arrays made during
        // the call in: a generator's `x` and the `vals` of the `Dict` it fills, which
        // `rehash!` replaces and resizes.)
        let existed = |a: Value<'ctx>| argument(a) || loaded_from_readonly_param(a);
        // (Or such an object itself, handed to a function that resizes what it reaches
        // from it: only arrays made during the call.)
        let held_fresh =
            |a: Value<'ctx>| holds_only_fresh_arrays(self.module, a) || holds_only_fresh_number_arrays(self.module, a);
        // (Or arrays under two objects the function allocates that hold arrays of their
        // own only: two `Dict`s.)
        let distinct = |a: Value<'ctx>, b: Value<'ctx>| {
            distinct(a, b)
                || existed(a) && held_fresh(b)
                || existed(b) && held_fresh(a)
                || under_distinct_objects(self.module, a, b)
        };
        let candidates = stack_loaded_objects(o, 4).unwrap_or_else(|| vec![o]);
        // (An element of an array of arrays is not that array, which the function never
        // stores anywhere as a value: `for v in vs` after `push!(vs, ...)`.)
        let element_of = |c: Value<'ctx>, r: Value<'ctx>| self.element_of(c) == Some(r) && !stored_as_value(r);
        let mut sites: Vec<Value<'ctx>> = self
            .resized
            .iter()
            .filter(|&&(_, r)| candidates.iter().any(|&c| r == c || !distinct(c, r) && !element_of(c, r)))
            .map(|&(site, _)| site)
            .collect();
        sites.dedup();
        sites
    }

    /// The array whose data pointer `c` was loaded from, when `c` is loaded from an
    /// array's data (an element of an array of arrays).
    fn element_of(&self, c: Value<'ctx>) -> Option<Value<'ctx>> {
        self.element_in(c, 4)
    }

    /// `element_of`, through merges of elements of one array (the running element of
    /// `for v in vs`), `depth` merges deep.
    fn element_in(&self, c: Value<'ctx>, depth: u32) -> Option<Value<'ctx>> {
        if pointer_op(c) == Some(PointerOp::Merge) && depth > 0 {
            let arrays: Vec<Option<Value<'ctx>>> =
                merged(c).into_iter().filter(|&v| v != c).map(|v| self.element_in(v, depth - 1)).collect();
            let first = (*arrays.first()?)?;
            return arrays.iter().all(|a| *a == Some(first)).then_some(first);
        }
        if c.opcode_if_instruction() != Some(Opcode::LLVMLoad) {
            return None;
        }
        self.data_pointer_under(c.operand(0)).map(|(o, _)| o)
    }

    /// The array object whose data pointer `v` is as an integer (the address a `ccall`
    /// of `memmove` takes): an integer loaded at the array object's own address.
    fn data_address_of(&self, v: Value<'ctx>) -> Option<Value<'ctx>> {
        if v.opcode_if_instruction() != Some(Opcode::LLVMLoad) || !v.ty().is_int() {
            return None;
        }
        let o = zero_offset_base(v.operand(0));
        matches!(self.leaf(o), Some(Leaf::ArrayF64 | Leaf::ArrayF32)).then_some(o)
    }

    fn data_pointer_in(&self, v: Value<'ctx>, depth: u32) -> Option<Value<'ctx>> {
        if depth == 0 || !v.is_instruction() || !self.is_shadowed(v) {
            return None;
        }
        match pointer_op(v)? {
            PointerOp::Load if self.is_data(v) && !self.is_data(v.operand(0)) => Some(zero_offset_base(v.operand(0))),
            PointerOp::Merge => {
                let objects: Vec<Option<Value<'ctx>>> =
                    merged(v).into_iter().filter(|&x| x != v).map(|x| self.data_pointer_in(x, depth - 1)).collect();
                let first = (*objects.first()?)?;
                objects.iter().all(|o| *o == Some(first)).then_some(first)
            }
            _ => None,
        }
    }

    /// Whether a shadow of object `a` could mirror it. A pointer loaded from a shadowed
    /// object is read as an array with a shadow, so a heap object is shadowed only when
    /// everything that touches it is in sight and keeps that true: stores of numbers, of
    /// differentiated arrays and of its type tag, loads, its address stored into GC frame
    /// slots (`inert`), and calls of functions differentiated call by call (whose own
    /// stores are checked alike, by `untracked`). Not one stored elsewhere, merged with
    /// other pointers, handed to the runtime or turned into an integer: Julia's logging
    /// and printing box a value and put the box in arrays and tuples of anything. Such an
    /// object keeps no shadow, and the derivative data stored into it is refused when the
    /// code using it is reached. (Stack objects keep the check `untracked` makes on each
    /// store.) An array the function allocates that `fresh` accepts (an array of floats)
    /// may be stored into it too: once the object has a shadow, the array gets a zeroed
    /// one of its own (`activity`), which the object's shadow holds (a `@threads` loop's
    /// closure over the differentiated input and the array it fills).
    pub fn can_mirror(
        &self,
        a: Value<'ctx>,
        inert: &HashSet<Value<'ctx>>,
        fresh: &dyn Fn(Value<'ctx>) -> bool,
    ) -> bool {
        if gc_allocation(a).is_none() {
            return true;
        }
        // (A box only printing or logging reads keeps no shadow: it holds what is shown,
        // and the argument arrays it goes into are handed to the runtime.)
        if printed_only(self.module, a) {
            return false;
        }
        // (Merges of such objects are followed like the object: a struct replaced in a
        // loop, `c = Cell(c.w .* 2, c.s * x)`, is a phi of the first and the new one.)
        let merges: std::cell::RefCell<Vec<Value<'ctx>>> = std::cell::RefCell::new(Vec::new());
        let accept = |p: Value<'ctx>, u: Value<'ctx>| match u.opcode_if_instruction() {
            Some(Opcode::LLVMStore) if u.operand(1) == p => {
                let v = u.operand(0);
                let array = matches!(self.leaf(v), Some(Leaf::ArrayF64 | Leaf::ArrayF32)) && !self.is_data(v);
                // (Or an object the function allocates, with a shadow or not yet: the
                // outer shadow then holds its shadow, and without one the store is
                // refused, `untracked`.)
                // (Or a merge of such objects and `nothing`: a link to the previous node
                // of a list built in a loop, `heap_family`.)
                let object = linked_objects(self.module, v).is_some_and(|o| !o.is_empty());
                // (Or a struct object read from a field of another, whose shadow is read
                // from the other's shadow: a task's result fetched and returned by an
                // outer task, the same box.)
                let read_object = matches!(self.leaf(v), Some(Leaf::Object(_)));
                // (Or a dynamic call's result, a boxed float whose shadow is a box, or a
                // merge of them: a closure's `Core.Box` holding a variable inference
                // gives up on. Without a shadow, when the calls are handed none, the
                // store is refused, `untracked`.)
                let boxed = hook_boxes(v);
                !v.ty().is_pointer()
                    || is_null(v)
                    || is_inert_object(v)
                    || array
                    || fresh(v)
                    || object
                    || read_object
                    || boxed
            }
            // Stored as a value only into a GC frame slot nobody reads (`inert`), or
            // into another heap object the function allocates (a mutable struct
            // holding it: that object's loads read it by its layout,
            // `heap_object_field`, and without a shadow of its own the store is
            // refused, `untracked`), or into an array the function allocates (an array of
            // such objects, `Leaf::Objects`, whose shadow holds the shadows; likewise
            // refused without one): anywhere else, a pointer loaded back would be read
            // as an array.
            // (Or into a stack object, which is not a GC frame: the arguments array of a
            // call Julia makes through its generic calling convention, `hvcat` holding
            // the boxed floats of `[a b; c d]`; the stack object then gets a shadow
            // holding the box's, and `untracked` checks its every use.)
            Some(Opcode::LLVMStore) => {
                inert.contains(&u)
                    || object_slots(self.module, u.operand(1)).is_some_and(|(objects, _)| {
                        !objects.is_empty()
                            && objects.iter().all(|o| gc_allocation(*o).is_some())
                            && (!objects.contains(&a) || pointer_op(p) == Some(PointerOp::Merge))
                    })
                    || alloca_base(u.operand(1)).is_some_and(|o| !is_gc_frame(o) || self.frames.contains(&o))
                    // (Or into a root slot of a GC frame that is read back, which Julia
                    // uses as a stack object — a generator over a closure's box, kept in
                    // a slot and handed by reference to the reduction inlined below —:
                    // the frame gets a shadow frame holding the shadow, `activity`.)
                    || alloca_base(u.operand(1)).is_some_and(|o| is_gc_frame(o) && shadowable_stack_object(o))
                    || self.allocated_array(u.operand(1)).is_some()
                    // (Or, a box of a float, into a `Core.Box` read by its layout, whose
                    // shadow then holds its shadow, `mirrors_box_store`.)
                    || self.box_field(u.operand(1)).is_some_and(|l| constant_type_tag(a).and_then(type_leaf) == Some(l))
                    // (Or into a struct object's field read by its layout as holding a
                    // struct object: `mirrors_field_store` checks the layouts agree.)
                    || u.operand(0) == p && self.object_field(u.operand(1))
            }
            Some(Opcode::LLVMLoad | Opcode::LLVMICmp) => true,
            Some(Opcode::LLVMCall) => u.as_call().is_some_and(|call| {
                let callee = call.called_operand();
                let name = callee_name(callee).unwrap_or_default();
                callee.as_function().is_some_and(|f| !f.is_declaration() || f.intrinsic_id() != 0)
                    || name == crate::julia::current().write_barrier
                    // (An error path's call, which throws: `jl_type_error` when a box
                    // does not hold the type a typed captured variable declares.)
                    || is_noreturn_call(call)
            }),
            Some(Opcode::LLVMPHI) => {
                merges.borrow_mut().push(u);
                true
            }
            Some(Opcode::LLVMSelect) if u.operand(0) != p => {
                merges.borrow_mut().push(u);
                true
            }
            _ => false,
        };
        if !every_use(a, |d| !is_object_header(d), accept) {
            return false;
        }
        let mut seen: HashSet<Value<'ctx>> = HashSet::new();
        loop {
            let Some(merge) = merges.borrow_mut().pop() else { break };
            if !seen.insert(merge) {
                continue;
            }
            // Each value merged is such an object (at its own address), a merge of them,
            // or an element loaded from an array the function allocates (the first object
            // stored there, forwarded to the loop that reads them all, meets the load).
            // (Or one loaded from a field of a heap object the function allocates, which
            // holds what was stored there: the value in a closure's `Core.Box`. Or an
            // integer's box, which holds no float: its own shadow there, `constant_data`.)
            // (Or a struct a dynamic call returns, whose edge into the merge is refused
            // when taken: `returns_struct_object`.)
            let object = |v: Value<'ctx>| {
                v.is_instruction()
                    && (pointer_op(v) == Some(PointerOp::Merge)
                        || integer_box(v)
                        || returns_struct_object(v)
                        || at_offset_zero(v) && gc_allocation(zero_offset_base(v)).is_some()
                        || pointer_op(v) == Some(PointerOp::Load)
                            && (self.allocated_array(v.operand(0)).is_some()
                                || object_base(v.operand(0)).is_some_and(|o| gc_allocation(o).is_some())
                                // (Or from a `Core.Box` read by its layout: `box_field`.)
                                || self.box_field(v.operand(0)).is_some()))
            };
            // (Or `nothing`, and the links of a list the function builds, which a loop
            // walking it merges with the nodes: `merged_heap_objects`.)
            // (Or addresses of one field of such objects: GVN merges `c.v`'s address when
            // a branch chose `c`; what is stored through it, `heap_layout` and
            // `heap_field_stores` see.)
            let objects = merged(merge).into_iter().all(|v| is_nothing(v) || object(v))
                || merged_heap_objects(self.module, merge).is_some()
                || merged_fields(self.module, merge).is_some();
            if !objects || !every_use(merge, |d| !is_object_header(d), accept) {
                return false;
            }
        }
        true
    }

    /// Whether `v` is an array without a derivative shadowed by a zeroed copy
    /// (`Memory::copies`).
    pub fn is_zero_copy(&self, v: Value<'ctx>) -> bool {
        self.copies.contains(&v)
    }

    /// The arrays shadowed by a zeroed copy that are constants (globals, embedded by
    /// address): their copies are made on entry.
    pub fn constant_zero_copies(&self) -> Vec<Value<'ctx>> {
        self.copies.iter().copied().filter(|v| !v.is_instruction()).collect()
    }

    /// Whether `a` is a GC frame with a shadow frame (whose root slots hold the
    /// shadows of the differentiated arrays its root slots hold).
    pub fn is_shadow_frame(&self, a: Value<'ctx>) -> bool {
        self.frames.contains(&a)
    }

    /// Whether `v` is a pointer to memory without a derivative that a merge of shadowed
    /// pointers may choose (runtime activity): its shadow there is `v` itself.
    pub fn is_inactive_side(&self, v: Value<'ctx>) -> bool {
        self.inactive.contains(&v)
    }

    /// Whether pointer `p` leads to memory without a derivative by declaration (a
    /// `Const` argument's, a global's: `constant_data`).
    pub fn is_constant_data(&self, p: Value<'ctx>) -> bool {
        constant_data(p, &self.shadowed)
    }

    /// Text printer for tests and bug reports: one line per value with a shadow, with
    /// what the memory it points to holds, whether it points into an array's data, and
    /// whether its shadow may be itself when the code runs (runtime activity).
    pub fn print(&self, f: Function<'ctx>) -> String {
        let mut out = String::new();
        for i in f.params().into_iter().chain(f.blocks().into_iter().flat_map(|b| b.instructions())) {
            let Some(leaf) = self.shadowed.get(&i) else { continue };
            let mut notes = vec![format!("{leaf:?}")];
            if self.data.contains(&i) {
                notes.push("data".into());
            }
            if self.maybe_constant.contains(&i) {
                notes.push("maybe constant".into());
            }
            out.push_str(&format!("{}  ; {}\n", i.print().trim(), notes.join(", ")));
        }
        out
    }

    /// Whether shadowed pointer `p` may point into memory without a derivative, which the
    /// derivative learns when it runs (the shadow equals the primal: runtime activity).
    pub fn maybe_constant(&self, p: Value<'ctx>) -> bool {
        self.maybe_constant.contains(&p)
    }

    /// Whether shadowed pointer `p` points into array data (floats), not at an array
    /// object's fields.
    pub fn is_data(&self, p: Value<'ctx>) -> bool {
        self.data.contains(&p)
    }

    /// Whether `v` is the address of shadowed memory turned into an integer (or a
    /// pointer rebuilt from one), which code without a rule could read or write through.
    pub fn is_escaped(&self, v: Value<'ctx>) -> bool {
        self.escaped.contains(&v)
    }

    /// The array allocation a pointer derives from, when it derives from exactly one.
    pub fn origin(&self, p: Value<'ctx>) -> Option<Value<'ctx>> {
        self.origin.get(&p).copied()
    }

    /// The array the function allocates (`jl_alloc_array_*`) whose data `p` points into,
    /// if it is one (`origin`, without copies and other arrays).
    pub fn allocated_array(&self, p: Value<'ctx>) -> Option<Value<'ctx>> {
        self.origin(p).filter(|&o| array_call(o) == Some(ArrayCall::Alloc))
    }

    /// The array allocation whose data the element `p` derives from was loaded from (an
    /// inner array of an array of arrays the function allocates), when it is one.
    pub fn element_origin(&self, p: Value<'ctx>) -> Option<Value<'ctx>> {
        self.element_origin.get(&p).copied()
    }

    /// Whether `v` is a heap object the function allocates, with a shadow of its own (a
    /// mutable struct, which another may hold: `heap_object_field`).
    pub fn is_heap_object(&self, v: Value<'ctx>) -> bool {
        is_heap_object(v, &self.shadowed)
    }

    /// Whether `v` is a merge of heap objects with shadows of their own and `nothing`
    /// (a link to the previous node of a list built in a loop), which may be stored into
    /// such an object like one of them.
    pub fn is_heap_object_merge(&self, v: Value<'ctx>) -> bool {
        pointer_op(v) == Some(PointerOp::Merge)
            && self.shadowed.contains_key(&v)
            && merged_heap_objects(self.module, v)
                .is_some_and(|o| !o.is_empty() && o.iter().all(|o| is_heap_object(*o, &self.shadowed)))
    }

    /// The layout of heap object `v` (a mutable struct the function allocates, with a
    /// shadow: `heap_layout`), which an array of such objects the function allocates is
    /// an array of (`Leaf::Objects`). `None` for any other pointer, or a layout not known.
    /// (Or of a merge of such objects of one layout: a struct built on one path, beside
    /// a dynamic call's on the other, `returns_struct_object`; but for references some
    /// of them leave out, `joined_layout`.)
    pub fn heap_object_layout(&self, v: Value<'ctx>) -> Option<Fields> {
        if self.is_heap_object(v) {
            let layout = heap_layout(self.module, zero_offset_base(v), &self.shadowed, 4)?;
            return Some(crate::request::intern(&layout));
        }
        if !self.is_heap_object_merge(v) {
            return None;
        }
        let objects = merged_heap_objects(self.module, v)?;
        let mut layouts = objects.iter().map(|&o| heap_layout(self.module, o, &self.shadowed, 4));
        let first = layouts.next()??;
        let joined = layouts.try_fold(first, |joined, l| joined_layout(&joined, &l?))?;
        Some(crate::request::intern(&joined))
    }

    /// What a callee handed pointer `v` reads it as: its leaf, but a struct object laid
    /// out as its stores say for a heap object the function allocates that holds
    /// another (the callee does not see the stores that tell what its fields hold).
    pub fn callee_leaf(&self, v: Value<'ctx>) -> Option<Leaf> {
        let layout = self.heap_layouts.get(&zero_offset_base(v)).filter(|_| at_offset_zero(v));
        layout.map(|f| Leaf::Object(f)).or_else(|| self.leaf(v))
    }

    /// Whether pointer `p` has a shadow.
    pub fn is_shadowed(&self, p: Value<'ctx>) -> bool {
        self.shadowed.contains_key(&p)
    }

    /// Edges the derivative must not take (`cut_edges`): `(phi, predecessor, message)`.
    pub fn cut_edges(&self) -> &[(Value<'ctx>, crate::llvm::Block<'ctx>, String)] {
        &self.cut_edges
    }

    /// Whether the edge from `pred` into `phi` is cut.
    pub fn is_cut(&self, phi: Value<'ctx>, pred: crate::llvm::Block<'ctx>) -> bool {
        self.cut_edges.iter().any(|(p, b, _)| *p == phi && *b == pred)
    }

    /// The shadowed pointers aggregate value `v` holds, if any.
    pub fn aggregate_paths(&self, v: Value<'ctx>) -> Option<&Paths<'ctx>> {
        self.aggregates.get(&v)
    }

    /// The float type of the memory behind a shadowed pointer.
    pub fn leaf(&self, p: Value<'ctx>) -> Option<Leaf> {
        self.shadowed.get(&p).copied()
    }

    /// Whether `p` addresses fields of a struct object declared without derivative
    /// (`Layout::Inactive`) and nothing else.
    pub fn inactive_field(&self, m: &crate::llvm::Module, p: Value<'ctx>) -> bool {
        let Some(Leaf::Object(fields)) = self.leaf(p) else { return false };
        if !fields.iter().any(|(_, l)| *l == Layout::Inactive) {
            return false;
        }
        let layouts = field_layouts(m, p, fields, false);
        !layouts.is_empty() && layouts.iter().all(|l| **l == Layout::Inactive)
    }

    /// Whether `len` bytes (`None`: not known) from address `p` may include a field of a
    /// struct object declared without derivative (`Layout::Inactive`).
    pub fn may_touch_inactive(&self, m: &crate::llvm::Module, p: Value<'ctx>, len: Option<u64>) -> bool {
        let Some(Leaf::Object(fields)) = self.leaf(p) else { return false };
        let inactive: Vec<i64> =
            fields.iter().filter(|(_, l)| *l == Layout::Inactive).map(|(at, _)| *at as i64).collect();
        if inactive.is_empty() {
            return false;
        }
        match (field_offsets(m, p), len.and_then(|n| i64::try_from(n).ok())) {
            (Some(starts), Some(n)) => starts.iter().any(|&s| inactive.iter().any(|&at| at >= s && at < s + n)),
            _ => true,
        }
    }
}

/// Whether `v` is Julia's `nothing`: the constant address of the singleton (a field
/// typed `Union{Node,Nothing}` ending a linked list). It holds nothing to differentiate;
/// a shadow object holds it where its primal does (`transform::shadow`).
pub fn is_nothing(v: Value) -> bool {
    static NOTHING: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    let nothing = NOTHING.get_or_init(|| {
        let global = crate::symbols::address_of(crate::julia::current().nothing)?;
        // SAFETY: the runtime's `jl_nothing` is a global pointer to the singleton, set
        // when Julia starts, before any derivative is asked for.
        let singleton = unsafe { *(global as *const u64) };
        (singleton != 0).then_some(singleton)
    });
    nothing.is_some() && v.is_constant() && crate::llvm::const_address(v) == *nothing
}

/// Whether `v` is an object the function allocates without any bytes of its own (a
/// `Ref` of a function or of a `Val`, which broadcasting builds): it holds no derivative
/// data, ever, so where it is stored beside differentiated arrays its shadow is itself,
/// as `nothing`'s is.
pub fn is_empty_object(v: Value) -> bool {
    let Some(base) = object_base(v).filter(|_| at_offset_zero(v)) else { return false };
    own_bytes(base) == Some(0)
}

/// The size of the object that collector allocation `a` makes, its header left out (a
/// constant); `None` for anything else.
fn own_bytes(a: Value) -> Option<u64> {
    let alloc = gc_allocation(a)?;
    let tag = if alloc.size_includes_tag { crate::julia::current().object_tag } else { 0 };
    if alloc.size_arg >= a.num_operands() {
        return None;
    }
    a.operand(alloc.size_arg).const_uint()?.checked_sub(tag)
}

/// Whether `v` holds no derivative data, ever, so that where it is stored beside
/// objects with shadows its shadow is itself: `nothing`, a name (a symbol: a task's
/// state; a string), an object the function allocates without bytes of its own
/// (`is_empty_object`), a tuple of integers or a boxed integer Julia embeds by address
/// (`integer_constant_object`: the row lengths `hvcat` is handed beside the boxed floats
/// of `[a b; c d]`), or an array of names Julia embeds by address (a global
/// `const NAMES = ["a", "b"]` a generator over `x` captures).
pub fn is_inert_object(v: Value) -> bool {
    is_nothing(v)
        || is_name(v)
        || is_empty_object(v)
        || integer_constant_object(v)
        || constant_array_element(v).is_some_and(|e| name_type_tags().contains(&e))
}

/// Whether `v` is a name, a `Symbol` or a `String` (immutable, without a derivative
/// ever): one Julia embeds by address (read off its type tag; `false` where the runtime
/// is not in this process), one loaded from a constant immutable object or from an
/// array of names, one a function without a derivative returns, or a merge (`phi`, `select`) of such names: the keys of `Dict(:a =>
/// x[1], :b => x[2])` or `Dict("a" => x[1])`, chosen as its loop runs.
pub fn is_name(v: Value) -> bool {
    fn merged<'ctx>(v: Value<'ctx>, seen: &mut HashSet<Value<'ctx>>) -> bool {
        if !seen.insert(v) {
            return true;
        }
        match v.opcode_if_instruction() {
            Some(Opcode::LLVMPHI) => v.as_phi().is_some_and(|phi| phi.incoming().iter().all(|&(x, _)| merged(x, seen))),
            Some(Opcode::LLVMSelect) => merged(v.operand(1), seen) && merged(v.operand(2), seen),
            Some(Opcode::LLVMLoad) => loaded_constant_name(v) || loaded_name_element(v),
            // (A `String` or `Symbol` a function without a derivative returns,
            // `string("k", i)`, or the runtime interns, `Symbol("k", i)`.)
            Some(Opcode::LLVMCall) => {
                crate::names::name_result(v)
                    || v.as_call().and_then(|c| callee_name(c.called_operand())).is_some_and(|n| {
                        v.ty().is_pointer() && crate::julia::current().name_functions.contains(&n.as_str())
                    })
            }
            Some(_) => false,
            None => constant_name(v),
        }
    }
    merged(v, &mut HashSet::new())
}

/// The type tags of names: `Symbol`'s and `String`'s `DataType`s (`julia::Runtime::
/// name_types`), those the process has.
fn name_type_tags() -> Vec<u64> {
    crate::julia::current()
        .name_types
        .iter()
        .filter_map(|name| crate::symbols::address_of(name))
        // SAFETY: the runtime's globals naming types are set when Julia starts.
        .map(|g| unsafe { *(g as *const u64) })
        .collect()
}

/// Whether load `v` reads an element of an array of names (`Vector{String}`, a vector of
/// `Symbol`s) the function allocates or Julia embeds by address (a constant global):
/// through the array's data pointer, loaded at the array object's address. Such an
/// element is a name (or unset), whatever was stored there.
fn loaded_name_element(v: Value) -> bool {
    let rt = crate::julia::current();
    if v.ty().address_space() != Some(rt.tracked_address_space) {
        return false;
    }
    let p = strip_address(v.operand(0));
    if p.opcode_if_instruction() != Some(Opcode::LLVMLoad) || !at_offset_zero(p.operand(0)) {
        return false;
    }
    let array = zero_offset_base(p.operand(0));
    name_array_allocation(array) || constant_array_element(array).is_some_and(|e| name_type_tags().contains(&e))
}

/// Whether load `v` reads a name (a symbol or a string) out of a field of an immutable
/// object Julia embeds by address (`jtbaa_immut`, `jtbaa_const`: the keys of a tuple of
/// symbols a generator captures, `enumerate((:a, :b))`): such a field never changes, so
/// the name is read here once, and the object keeps it alive.
fn loaded_constant_name(v: Value) -> bool {
    let rt = crate::julia::current();
    let immutable = v.tbaa_type_name().is_some_and(|n| n == "jtbaa_immut" || n == "jtbaa_const");
    let (Some(at), tags) =
        (crate::llvm::const_address(v.operand(0)).filter(|&a| a > rt.object_tag && a % 8 == 0), name_type_tags())
    else {
        return false;
    };
    if !immutable || v.ty().address_space() != Some(rt.tracked_address_space) || tags.is_empty() {
        return false;
    }
    // SAFETY: `at` is an address Julia embedded in code it compiled, into an immutable
    // object (the access's TBAA says so) that its method keeps alive; the field holds a
    // pointer to a live object or null, and an object has its type tag in the word
    // before it (low four bits GC bits).
    unsafe {
        let field = *(at as *const u64);
        field > rt.object_tag
            && field.is_multiple_of(8)
            && tags.contains(&(*((field - rt.object_tag) as *const u64) & !15))
    }
}

/// Whether constant `v` is a name (a symbol or a string) Julia embeds by address.
fn constant_name(v: Value) -> bool {
    let rt = crate::julia::current();
    if !v.is_constant() || v.ty().address_space() != Some(rt.tracked_address_space) {
        return false;
    }
    let (Some(address), tags) =
        (crate::llvm::const_address(v).filter(|&a| a > rt.object_tag && a % 8 == 0), name_type_tags())
    else {
        return false;
    };
    // (No runtime in this process, no names: the address is not read.)
    if tags.is_empty() {
        return false;
    }
    // SAFETY: as in `constant_boxed_float`: `address` is a tracked pointer Julia
    // embedded in code it compiled, a live object with its type tag in the word before
    // it.
    tags.contains(&unsafe { *((address - rt.object_tag) as *const u64) & !15 })
}

/// Whether `v` is a constant address (an object Julia embeds by address: a symbol, a
/// type, a function, a tuple) of an object that is neither an array of floats nor a
/// boxed float, read off its type tag; `false` where the runtime is not in this process.
/// Such an object, immutable or without a derivative by declaration, is read as the
/// primal's wherever it goes; a differentiated value stored into it is refused
/// (`analysis::untracked`).
fn constant_object_without_floats(v: Value) -> bool {
    let rt = crate::julia::current();
    v.is_constant()
        && v.ty().address_space() == Some(rt.tracked_address_space)
        && crate::llvm::const_address(v).is_some_and(|a| a > rt.object_tag && a % 8 == 0)
        && crate::symbols::address_of(rt.array_typename).is_some()
        && constant_float_array_object(v).is_none()
        && constant_boxed_float(v).is_none()
}

/// The addresses of the runtime's globals holding the integer types and `Bool`
/// (`Runtime::integer_types`), when every one is in this process.
fn integer_type_globals() -> Option<Vec<u64>> {
    crate::julia::current().integer_types.iter().map(|name| crate::symbols::address_of(name)).collect()
}

/// Whether `v` is a constant address (an object Julia embeds by address) of a tuple
/// whose fields are integers, `Bool`s or symbols, or of a boxed integer or `Bool` (the `2` of
/// `[x, 2, y]`, handed boxed to the literal's method beside the boxed floats), read off
/// the object's type tag. `false` for any other object or constant, and where the
/// runtime is not in this process.
pub fn integer_constant_object(v: Value) -> bool {
    let rt = crate::julia::current();
    if !v.is_constant() || v.ty().address_space() != Some(rt.tracked_address_space) {
        return false;
    }
    let Some(address) = crate::llvm::const_address(v).filter(|&a| a > rt.object_tag && a % 8 == 0) else {
        return false;
    };
    let (Some(tuple_typename), Some(integers)) =
        (crate::symbols::address_of(rt.tuple_typename), integer_type_globals())
    else {
        return false;
    };
    // SAFETY: as in `constant_float_array_object`: `address` is a tracked pointer Julia
    // embedded in code it compiled, a live object with its type tag in the word before
    // it (low four bits GC bits); a `DataType`'s parameters are a `svec` (its length,
    // then its elements); the globals read are set when Julia starts.
    unsafe {
        let read = |a: u64| *(a as *const u64);
        let tag = read(address - rt.object_tag) & !15;
        if tag != 0 && integers.iter().any(|&g| read(g) == tag) {
            return true;
        }
        if tag == 0 || read(tag + rt.datatype_name) != read(tuple_typename) {
            return false;
        }
        let parameters = read(tag + rt.datatype_parameters);
        let n = read(parameters);
        // (Symbols too: the keys of `enumerate((:a, :b))` a generator captures.)
        let names = name_type_tags();
        (0..n).all(|k| {
            let t = read(parameters + rt.svec_data + 8 * k);
            integers.iter().any(|&g| read(g) == t) || names.contains(&t)
        })
    }
}

/// The type tag the function stores into the header of object `a`, which it allocates,
/// as a constant (the address of its `DataType`). `None` for any other object.
pub fn constant_type_tag(a: Value) -> Option<u64> {
    gc_allocation(a)?;
    a.users().into_iter().filter(|&h| is_object_header(h)).find_map(|h| {
        h.users()
            .into_iter()
            .find(|s| s.opcode() == Opcode::LLVMStore && s.operand(1) == h)
            .and_then(|s| crate::llvm::const_address(s.operand(0)))
    })
}

/// A field of a tuple of numbers (`tuple_number_fields`): its byte offset and type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NumberField {
    /// A `Float64` at this offset.
    F64(u64),
    /// A `Float32` at this offset.
    F32(u64),
    /// An `Int64` at this offset.
    I64(u64),
    /// An `Int32` at this offset.
    I32(u64),
}

/// The fields of the tuple type at address `ty` (a `DataType` Julia embedded in code, the
/// type tag it stores into a tuple it allocates) when each is a `Float64`, `Float32`,
/// `Int64` or `Int32`, at their offsets (each aligned to its size, as Julia lays out a
/// tuple of such numbers). `None` for any other type, and where the runtime is not in
/// this process.
pub fn tuple_number_fields(ty: u64) -> Option<Vec<NumberField>> {
    let rt = crate::julia::current();
    if ty <= rt.object_tag || !ty.is_multiple_of(8) {
        return None;
    }
    let global = |name: &str| crate::symbols::address_of(name);
    let tuple_typename = global(rt.tuple_typename)?;
    let kinds = [
        (global("jl_float64_type")?, 8, NumberField::F64 as fn(u64) -> NumberField),
        (global("jl_float32_type")?, 4, NumberField::F32 as fn(u64) -> NumberField),
        (global("jl_int64_type")?, 8, NumberField::I64 as fn(u64) -> NumberField),
        (global("jl_int32_type")?, 4, NumberField::I32 as fn(u64) -> NumberField),
    ];
    // SAFETY: `ty` is the address of a type object Julia embedded in code it compiled (the
    // code roots it); a `DataType`'s name and parameters are at the runtime's offsets, its
    // parameters a `svec` (its length, then its elements); the globals read are set when
    // Julia starts.
    unsafe {
        let read = |a: u64| *(a as *const u64);
        if read(ty + rt.datatype_name) != read(tuple_typename) {
            return None;
        }
        let parameters = read(ty + rt.datatype_parameters);
        let mut offset: u64 = 0;
        let mut fields = Vec::new();
        for k in 0..read(parameters) {
            let t = read(parameters + rt.svec_data + 8 * k);
            let &(_, size, field) = kinds.iter().find(|(g, _, _)| read(*g) == t)?;
            offset = offset.div_ceil(size) * size;
            fields.push(field(offset));
            offset += size;
        }
        Some(fields)
    }
}

/// The layout of the array at constant address `v` (an object Julia embeds by address),
/// read off the object itself: its type tag names `Array{Float64}` or `Array{Float32}`.
/// `None` for any other object, for a constant that is not a tracked pointer (only those
/// address objects with a type tag before them), and where the runtime is not in this
/// process. The type analysis alone cannot tell: a stack array reused for other objects
/// later (the argument array of a call) smears their types over the constants stored
/// into it, and a zeroed copy of an object that is not an array reads garbage sizes.
pub fn constant_float_array_object(v: Value) -> Option<Leaf> {
    let rt = crate::julia::current();
    let element = constant_array_element(v)?;
    let global = |name: &str| crate::symbols::address_of(name);
    // SAFETY: the runtime's globals are set when Julia starts.
    rt.float_types
        .iter()
        .find(|(name, _)| global(name).is_some_and(|g| unsafe { *(g as *const u64) } == element))
        .map(|&(_, leaf)| leaf)
}

/// Union splitting on a splat's or dynamic call's result: Julia compares the result's
/// type tag with each type inference allows (`[x...]`: a `Vector{Any}` or a
/// `Vector{Float64}`) and branches to code for each. Where the engine reads the result
/// as an array of floats (`hook_result_leaf`), the hook refuses any other result when
/// the call runs, so every comparison with another type is false: these are the
/// comparisons to fold (`icmp`s, each with whether it is an `eq`), with the leaf. Their
/// branches are dead code, whose reads of another type's memory the analyses would
/// refuse. Empty for a result read as a boxed float (a dynamic call may return an
/// integer there too) or never read.
pub fn refused_type_checks(call: Value) -> (Leaf, Vec<(Value, bool)>) {
    let leaf = hook_result_leaf(call);
    if !matches!(leaf, Leaf::ArrayF64 | Leaf::ArrayF32) || crate::rules::calls::splat::unread_result(call) {
        return (leaf, Vec::new());
    }
    // (Not a comparison with the type of an array allocated here that merges with the
    // result: that array may be what the merge holds.)
    let reads = crate::rules::calls::splat::result_and_merges(call);
    let allocated: Vec<u64> = reads
        .iter()
        .filter(|&&r| pointer_op(r) == Some(PointerOp::Merge))
        .flat_map(|&r| merged(r))
        .filter(|&v| array_call(v) == Some(ArrayCall::Alloc))
        .filter_map(|v| crate::llvm::const_address(v.operand(0)))
        .collect();
    let folds = reads
        .iter()
        .flat_map(|&r| tag_compares(r))
        .filter(|&(_, ty)| type_leaf(ty) != Some(leaf) && !allocated.contains(&ty))
        .filter_map(|(cmp, _)| match cmp.icmp_predicate() {
            crate::llvm::IntPredicate::LLVMIntEQ => Some((cmp, true)),
            crate::llvm::IntPredicate::LLVMIntNE => Some((cmp, false)),
            _ => None,
        })
        .collect();
    (leaf, folds)
}

/// The types (their `DataType`s' addresses) the code compares object `p`'s type tag
/// with: the tag loaded at `p - object_tag`, its GC bits masked off, compared (`icmp`)
/// with a constant, as Julia's type checks and assertions do.
fn checked_types(p: Value) -> Vec<u64> {
    tag_compares(p).into_iter().map(|(_, a)| a).collect()
}

/// The comparisons `checked_types` finds, each with the type's address.
fn tag_compares(p: Value) -> Vec<(Value, u64)> {
    let rt = crate::julia::current();
    let mut out = Vec::new();
    let tag_address = |g: Value| {
        g.opcode() == Opcode::LLVMGetElementPtr
            && g.num_operands() == 2
            && g.operand(0) == p
            && g.gep_source_type().is_int()
            && g.gep_source_type().int_width() == 8
            && g.operand(1).const_int() == Some(-(rt.object_tag as i64))
    };
    for g in p.users().into_iter().filter(|&g| tag_address(g)) {
        let mut work: Vec<Value> = g.users().into_iter().filter(|l| l.opcode() == Opcode::LLVMLoad).collect();
        while let Some(v) = work.pop() {
            for u in v.users() {
                match u.opcode() {
                    Opcode::LLVMAnd | Opcode::LLVMIntToPtr | Opcode::LLVMAddrSpaceCast | Opcode::LLVMBitCast => {
                        work.push(u)
                    }
                    Opcode::LLVMICmp => {
                        let other = if u.operand(0) == v { u.operand(1) } else { u.operand(0) };
                        if let Some(a) = crate::llvm::const_address(other).filter(|&a| a > rt.object_tag && a % 8 == 0)
                        {
                            out.push((u, a));
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    out
}

/// What a value of the type at address `ty` (a `DataType` Julia embedded in code) is to
/// the engine: a `Float64` or `Float32` (`Leaf::F64`, `F32`), or an `Array` of one
/// (`ArrayF64`, `ArrayF32`); `None` for any other type, and where the runtime is not in
/// this process.
fn type_leaf(ty: u64) -> Option<Leaf> {
    let rt = crate::julia::current();
    let global = |name: &str| {
        // SAFETY: the runtime's globals naming types are set when Julia starts.
        crate::symbols::address_of(name).map(|g| unsafe { *(g as *const u64) })
    };
    let (f64_type, f32_type) = (global("jl_float64_type")?, global(rt.float32_type)?);
    if ty == f64_type {
        return Some(Leaf::F64);
    }
    if ty == f32_type {
        return Some(Leaf::F32);
    }
    // (Only a `DataType` is read further: its own type tag says it is one.)
    let datatype = global("jl_datatype_type")?;
    // SAFETY: `ty` is an object Julia embedded in code it compiled (the code roots it),
    // whose type tag is in the word before it, with four GC bits.
    if unsafe { *((ty - rt.object_tag) as *const u64) } & !15 != datatype {
        return None;
    }
    let element = array_type_element(ty)?;
    (element == f64_type).then_some(Leaf::ArrayF64).or((element == f32_type).then_some(Leaf::ArrayF32))
}

/// The element type (its `DataType`'s address) of the array type at address `ty` (a
/// `DataType` Julia embedded in code it compiled, or an object's type tag); `None` for
/// any other type, and where the runtime is not in this process.
fn array_type_element(ty: u64) -> Option<u64> {
    let rt = crate::julia::current();
    let array_typename = crate::symbols::address_of(rt.array_typename)?;
    // SAFETY: `ty` is an address Julia embedded in code it compiled and compares type
    // tags with: a live `DataType` (the code roots it), whose name is a type name and
    // whose parameters are a `svec` (an `Array` type's: the element type, then the
    // dimensions); the globals read are set when Julia starts.
    unsafe {
        let read = |a: u64| *(a as *const u64);
        if read(ty + rt.datatype_name) != read(array_typename) {
            return None;
        }
        Some(read(read(ty + rt.datatype_parameters) + rt.svec_data))
    }
}

/// The element type (its `DataType`'s address) of the array at constant address `v` (an
/// array Julia embeds by address), read off its type tag; `None` for any other value,
/// and where the runtime is not in this process.
fn constant_array_element(v: Value) -> Option<u64> {
    let rt = crate::julia::current();
    if !v.is_constant() || v.ty().address_space() != Some(rt.tracked_address_space) {
        return None;
    }
    let address = crate::llvm::const_address(v).filter(|&a| a > rt.object_tag && a % 8 == 0)?;
    crate::symbols::address_of(rt.array_typename)?;
    // SAFETY: `address` is a tracked pointer Julia embedded in code it compiled, so a
    // live object (the code roots it) with its type tag in the word before it, whose
    // low four bits are GC bits; a type tag addresses a `DataType`.
    let tag = unsafe { *((address - rt.object_tag) as *const u64) } & !15;
    if tag == 0 {
        return None;
    }
    array_type_element(tag)
}

/// The element type (its `DataType`'s address) of an array the function allocates
/// (`jl_alloc_array_*`), read off the array type the allocation is handed (a constant).
/// `None` for any other value, and where the runtime is not in this process.
fn allocated_element_type(a: Value) -> Option<u64> {
    if array_call(a) != Some(ArrayCall::Alloc) {
        return None;
    }
    let rt = crate::julia::current();
    // (`ty` is the array type Julia embedded in code it compiled for the allocation.)
    let ty = crate::llvm::const_address(a.operand(0)).filter(|&t| t > rt.object_tag && t % 8 == 0)?;
    array_type_element(ty)
}

/// Whether `a` is an array the function allocates (`jl_alloc_array_*`) whose elements
/// are integers or `Bool`s, read off the array type the allocation is handed (a
/// constant): its memory never holds a float (`sortperm`'s indices, `collect(1:n)`, an
/// integer literal `[3, 1, 2]`). `false` for any other value, and where the runtime is
/// not in this process.
pub fn integer_array_allocation(a: Value) -> bool {
    let (Some(element), Some(integers)) = (allocated_element_type(a), integer_type_globals()) else {
        return false;
    };
    // SAFETY: the globals `integer_type_globals` names are set when Julia starts.
    integers.iter().any(|&g| unsafe { *(g as *const u64) } == element)
}

/// Whether `a` is an array of names, `Symbol`s or `String`s, the function allocates
/// (`jl_alloc_array_*`, by its type, as `integer_array_allocation`): references to
/// immutable objects, which carry no derivative and are never written through (a
/// `Dict{Symbol,Float64}`'s keys, a `Dict{String,Float64}`'s).
pub fn name_array_allocation(a: Value) -> bool {
    allocated_element_type(a).is_some_and(|element| name_type_tags().contains(&element))
}

/// The array type of an array of `Float64` or `Float32` the function allocates
/// (`jl_alloc_array_*`), read off the array type the allocation is handed, whatever the
/// code does with its memory afterwards (an output handed to a rule, which returns it:
/// the code after the call reads the floats through the call's result). `None` for any
/// other value, and where the runtime is not in this process.
pub fn float_array_allocation_by_type(a: Value) -> Option<Leaf> {
    let element = allocated_element_type(a)?;
    let rt = crate::julia::current();
    rt.float_types
        .iter()
        .find(|(name, _)| {
            // SAFETY: the runtime's globals are set when Julia starts.
            crate::symbols::address_of(name).is_some_and(|g| unsafe { *(g as *const u64) } == element)
        })
        .map(|&(_, leaf)| leaf)
}

/// The type tag and the value of the boxed float at constant address `v` (the box of a
/// float literal, which Julia embeds by address), read off the object itself: its type
/// tag is `Float64`'s or `Float32`'s (the value comes back as an `f64`, exactly). `None`
/// for any other object or constant, and where the runtime is not in this process.
pub fn constant_boxed_float(v: Value) -> Option<(u64, Leaf, f64)> {
    let rt = crate::julia::current();
    if !v.is_constant() || v.ty().address_space() != Some(rt.tracked_address_space) {
        return None;
    }
    let address = crate::llvm::const_address(v).filter(|&a| a > rt.object_tag && a % 8 == 0)?;
    // (Without the runtime in this process, as in the engine's own tests, the address
    // is another process's: nothing is read.)
    let types: Vec<(u64, Leaf)> =
        rt.float_types.iter().filter_map(|&(name, leaf)| Some((crate::symbols::address_of(name)?, leaf))).collect();
    if types.len() != rt.float_types.len() {
        return None;
    }
    // SAFETY: as in `constant_float_array_object`: `address` is a tracked pointer Julia
    // embedded in code it compiled, a live object with its type tag in the word before
    // it; the globals naming the float types are set when Julia starts, and an object
    // of one of those types holds that float at its address.
    unsafe {
        let tag = *((address - rt.object_tag) as *const u64) & !15;
        let &(_, leaf) = types.iter().find(|&&(global, _)| *(global as *const u64) == tag)?;
        let value = match leaf {
            Leaf::ArrayF32 => f64::from(*(address as *const f32)),
            _ => *(address as *const f64),
        };
        Some((tag, leaf, value))
    }
}

/// Whether `v` is a null, undefined or poison constant.
pub fn is_null(v: Value) -> bool {
    v.is_constant() && (v.print().contains("null") || v.print().contains("undef") || v.print().contains("poison"))
}

/// For each pointer, the allocation (`jl_alloc_array_*`, `jl_array_copy`) it derives
/// from: the allocation itself, pointers derived from it, and its data pointer. Merges
/// that feed one another (an array carried around a loop by phis, as Julia does for the
/// variables live across a `try`) have the origin every value entering them has.
///
/// A pointer loaded from the array object (its data pointer) has the array's origin; a
/// pointer loaded from the array's data is an element, another object (an array of
/// arrays, of mutable structs), and has none: once it had the array's, and what was
/// read through an element of a vector of structs was taken for the vector's own
/// memory (a zero gradient, without an error).
/// The second map: for pointers derived from such an element, the array it was loaded
/// from (`Memory::element_origin`).
#[allow(clippy::type_complexity)]
fn origins<'ctx>(insts: &[Value<'ctx>]) -> (HashMap<Value<'ctx>, Value<'ctx>>, HashMap<Value<'ctx>, Value<'ctx>>) {
    let mut origin: HashMap<Value<'ctx>, Value<'ctx>> = HashMap::new();
    let mut data: HashSet<Value<'ctx>> = HashSet::new();
    loop {
        known_origins(insts, &mut origin, &mut data);
        if !merge_cycle_origins(insts, &mut origin, &mut data) {
            break;
        }
    }
    let mut element: HashMap<Value<'ctx>, Value<'ctx>> = HashMap::new();
    let mut changed = true;
    while changed {
        changed = false;
        for &i in insts {
            if element.contains_key(&i) || origin.contains_key(&i) {
                continue;
            }
            let o = match pointer_op(i) {
                Some(PointerOp::Load) if data.contains(&i.operand(0)) => origin.get(&i.operand(0)).copied(),
                // (And the element's own data pointer and what is derived from it.)
                Some(PointerOp::Derive | PointerOp::Load) => element.get(&i.operand(0)).copied(),
                Some(PointerOp::Merge) => {
                    let all: Vec<Option<Value<'ctx>>> = merged(i).iter().map(|v| element.get(v).copied()).collect();
                    all[0].filter(|o| all.iter().all(|x| *x == Some(*o)))
                }
                _ => None,
            };
            if let Some(o) = o {
                element.insert(i, o);
                changed = true;
            }
        }
    }
    (origin, element)
}

/// Gives the merges `known_origins` leaves unknown because they feed one another an
/// origin, where every value entering the group has it: assumed of the group at first,
/// then dropped from each merge an operand disagrees with, until none does. Whether
/// any merge got one.
fn merge_cycle_origins<'ctx>(
    insts: &[Value<'ctx>],
    origin: &mut HashMap<Value<'ctx>, Value<'ctx>>,
    data: &mut HashSet<Value<'ctx>>,
) -> bool {
    let is_merge = |v: Value<'ctx>| v.is_instruction() && pointer_op(v) == Some(PointerOp::Merge);
    let mut assumed: HashMap<Value<'ctx>, Value<'ctx>> = HashMap::new();
    for &i in insts.iter().filter(|&&i| pointer_op(i) == Some(PointerOp::Merge) && !origin.contains_key(&i)) {
        let ops = merged(i);
        let unknown_merge = |v: &Value<'ctx>| !origin.contains_key(v) && is_merge(*v);
        let known: Vec<Value<'ctx>> = ops.iter().filter_map(|v| origin.get(v).copied()).collect();
        let agree = !known.is_empty() && known.iter().all(|o| *o == known[0]);
        if agree && ops.iter().all(|v| origin.contains_key(v) || unknown_merge(v)) {
            assumed.insert(i, known[0]);
        }
    }
    // (A merge fed only by other merges of the group takes theirs.)
    let mut changed = true;
    while changed {
        changed = false;
        for &i in insts.iter().filter(|&&i| pointer_op(i) == Some(PointerOp::Merge)) {
            if origin.contains_key(&i) || assumed.contains_key(&i) {
                continue;
            }
            let ops = merged(i);
            let of = |v: &Value<'ctx>| origin.get(v).or_else(|| assumed.get(v)).copied();
            let merges_only = ops.iter().all(|v| is_merge(*v) || origin.contains_key(v));
            if let Some(o) = ops.iter().find_map(of).filter(|_| merges_only) {
                assumed.insert(i, o);
                changed = true;
            }
        }
    }
    // (The side, object or data, of the values entering each merge: one for all; then
    // every merge whose values do not all have its origin is dropped, in turn.)
    let side = |v: &Value<'ctx>| data.contains(v);
    assumed.retain(|i, _| {
        let known: Vec<bool> = merged(*i).iter().filter(|v| origin.contains_key(v)).map(side).collect();
        known.iter().all(|d| *d == known[0])
    });
    loop {
        let of = |v: &Value<'ctx>| origin.get(v).or_else(|| assumed.get(v)).copied();
        let wrong: Vec<Value<'ctx>> =
            assumed.iter().filter(|(i, o)| merged(**i).iter().any(|v| of(v) != Some(**o))).map(|(i, _)| *i).collect();
        if wrong.is_empty() {
            break;
        }
        for i in wrong {
            assumed.remove(&i);
        }
    }
    let sides: Vec<(Value<'ctx>, Value<'ctx>, bool)> = assumed
        .into_iter()
        .map(|(i, o)| (i, o, merged(i).iter().filter(|v| origin.contains_key(v)).any(side)))
        .collect();
    let any = !sides.is_empty();
    for (i, o, is_data) in sides {
        if is_data {
            data.insert(i);
        }
        origin.insert(i, o);
    }
    any
}

/// `origins`' rules from what is known of each operand.
fn known_origins<'ctx>(
    insts: &[Value<'ctx>],
    origin: &mut HashMap<Value<'ctx>, Value<'ctx>>,
    data: &mut HashSet<Value<'ctx>>,
) {
    let mut changed = true;
    while changed {
        changed = false;
        for &i in insts {
            if origin.contains_key(&i) {
                continue;
            }
            let object = |v: Value<'ctx>| origin.get(&v).copied().filter(|_| !data.contains(&v));
            // (The origin, and whether `i` is on the data side.)
            // (A reshape's data is the array's it wraps: a write through it writes
            // there, so that array is the one that needs a shadow. Its shadow is then
            // the reshape of that shadow; with no origin, a write through it is refused
            // where it is not shadowed, never given a shadow wrapping nothing.)
            let o = if array_call(i) == Some(ArrayCall::Reshape) {
                match origin.get(&i.operand(1)) {
                    Some(&o) if !data.contains(&i.operand(1)) => Some((o, false)),
                    _ => None,
                }
            } else if array_call(i).is_some() {
                Some((i, false))
            } else {
                match pointer_op(i) {
                    Some(PointerOp::Derive) => origin.get(&i.operand(0)).map(|o| (*o, data.contains(&i.operand(0)))),
                    // The data pointer (or the owner), loaded from the array object.
                    Some(PointerOp::Load) => object(i.operand(0)).map(|o| (o, true)),
                    Some(PointerOp::Merge) => {
                        let all: Vec<Option<(Value<'ctx>, bool)>> =
                            merged(i).iter().map(|v| origin.get(v).map(|o| (*o, data.contains(v)))).collect();
                        all[0].filter(|o| all.iter().all(|x| *x == Some(*o)))
                    }
                    // Addresses as integers (the data pointer loaded as an Int for BLAS).
                    None => match i.opcode() {
                        Opcode::LLVMLoad if i.ty().is_int() => object(i.operand(0)).map(|o| (o, true)),
                        Opcode::LLVMPtrToInt => origin.get(&i.operand(0)).map(|o| (*o, data.contains(&i.operand(0)))),
                        Opcode::LLVMAdd | Opcode::LLVMSub => {
                            let from = if origin.contains_key(&i.operand(0)) { i.operand(0) } else { i.operand(1) };
                            origin.get(&from).map(|o| (*o, data.contains(&from)))
                        }
                        _ => None,
                    },
                }
            };
            if let Some((o, is_data)) = o {
                origin.insert(i, o);
                if is_data {
                    data.insert(i);
                }
                changed = true;
            }
        }
    }
}

/// `ptrtoint` of shadowed pointers, and what integer arithmetic, merges and `inttoptr`
/// make of them.
fn escaped_addresses<'ctx>(insts: &[Value<'ctx>], shadowed: &HashMap<Value<'ctx>, Leaf>) -> HashSet<Value<'ctx>> {
    use Opcode::*;
    grow_to_fixpoint(insts, HashSet::new(), |i, escaped| {
        let from_operands = || i.operands().iter().any(|o| escaped.contains(o));
        match i.opcode() {
            LLVMPtrToInt => shadowed.contains_key(&i.operand(0)) || escaped.contains(&i.operand(0)),
            // An array's data pointer read as an integer (`pointer(x)`): a
            // pointer-sized load at offset 0 of a shadowed object (the length, at
            // offset 8, is just a number). (Not from objects that hold numbers only: a
            // tuple of numbers, `tuple_number_fields`, or numbers' boxes.)
            LLVMLoad => {
                let numbers = || {
                    number_box_merge(i.operand(0))
                        || constant_type_tag(zero_offset_base(i.operand(0))).and_then(tuple_number_fields).is_some()
                };
                i.ty().is_int()
                    && i.ty().int_width() == 64
                    && shadowed.contains_key(&i.operand(0))
                    && at_offset_zero(i.operand(0))
                    && !numbers()
            }
            LLVMAdd | LLVMSub | LLVMMul | LLVMAnd | LLVMOr | LLVMXor | LLVMShl | LLVMLShr | LLVMAShr | LLVMTrunc
            | LLVMZExt | LLVMSExt | LLVMIntToPtr | LLVMBitCast | LLVMAddrSpaceCast => from_operands(),
            LLVMPHI => i.as_phi().is_some_and(|phi| phi.incoming().iter().any(|(v, _)| escaped.contains(v))),
            LLVMSelect => escaped.contains(&i.operand(1)) || escaped.contains(&i.operand(2)),
            LLVMGetElementPtr => escaped.contains(&i.operand(0)),
            _ => false,
        }
    })
}

/// `p` without the casts and the GEPs whose indices are all constant zeros that lead to
/// it: the value it is the very address of (a GEP with an offset, when it is not one).
pub fn zero_offset_base(p: Value) -> Value {
    if !p.is_instruction() {
        return p;
    }
    match p.opcode() {
        Opcode::LLVMBitCast | Opcode::LLVMAddrSpaceCast => zero_offset_base(p.operand(0)),
        Opcode::LLVMGetElementPtr if (1..p.num_operands()).all(|k| p.operand(k).const_uint() == Some(0)) => {
            zero_offset_base(p.operand(0))
        }
        _ => p,
    }
}

/// The byte offsets from the struct object that address `p` is in (`p` without its
/// casts and constant-offset `getelementptr`s, through merges of such addresses): a
/// few, or `None` when an index varies over more (a tuple field picked at run time).
/// Merges may form cycles (a loop over a list's nodes inside another loop merges the
/// first node with itself): the offsets are the least fixpoint over the web of merges,
/// so an address that steps forward round a loop grows past the limit and is `None`,
/// while one that only comes round again adds nothing.
fn field_offsets(m: &crate::llvm::Module, p: Value) -> Option<Vec<i64>> {
    const LIMIT: usize = 16;
    enum Node<'ctx> {
        Start,
        Cast(Value<'ctx>),
        Gep(Value<'ctx>, Vec<i64>),
        Merge(Vec<Value<'ctx>>),
    }
    let mut nodes: HashMap<Value, Node> = HashMap::new();
    let mut order = Vec::new();
    let mut work = vec![p];
    while let Some(v) = work.pop() {
        if nodes.contains_key(&v) {
            continue;
        }
        let node = match v.opcode_if_instruction() {
            Some(Opcode::LLVMBitCast | Opcode::LLVMAddrSpaceCast) => Node::Cast(v.operand(0)),
            Some(Opcode::LLVMGetElementPtr) => Node::Gep(v.operand(0), m.gep_offsets(v, LIMIT)?.0),
            Some(Opcode::LLVMPHI | Opcode::LLVMSelect) => Node::Merge(merged(v)),
            // A pointer to an object (loaded from a field, an argument) is its start.
            _ => Node::Start,
        };
        match &node {
            Node::Start => {}
            Node::Cast(b) | Node::Gep(b, _) => work.push(*b),
            Node::Merge(vs) => work.extend(vs.iter().copied()),
        }
        nodes.insert(v, node);
        order.push(v);
        if order.len() > 256 {
            return None;
        }
    }
    // Operands first: most values are then final after one round.
    order.reverse();
    let mut offsets: HashMap<Value, Vec<i64>> = HashMap::new();
    let mut changed = true;
    while changed {
        changed = false;
        for v in &order {
            let of = |b: &Value| offsets.get(b).cloned().unwrap_or_default();
            let mut all: Vec<i64> = match &nodes[v] {
                Node::Start => vec![0],
                Node::Cast(b) => of(b),
                Node::Gep(b, steps) => {
                    of(b).iter().flat_map(|b| steps.iter().map(move |s| b.checked_add(*s))).collect::<Option<_>>()?
                }
                Node::Merge(vs) => vs.iter().flat_map(of).collect(),
            };
            all.sort_unstable();
            all.dedup();
            if all.len() > LIMIT {
                return None;
            }
            if offsets.get(v) != Some(&all) {
                offsets.insert(*v, all);
                changed = true;
            }
        }
    }
    offsets.remove(&p)
}

/// The layouts of the fields of struct object `fields` that address `p` may read: the
/// fields at its offsets, or when they are not known every field that holds a pointer
/// (`pointer`) or every field.
fn field_layouts(m: &crate::llvm::Module, p: Value, fields: Fields, pointer: bool) -> Vec<&'static Layout> {
    match field_offsets(m, p) {
        Some(offsets) => fields.iter().filter(|(at, _)| offsets.contains(&(*at as i64))).map(|(_, l)| l).collect(),
        None => fields
            .iter()
            .map(|(_, l)| l)
            .filter(|l| {
                !pointer || matches!(l, Layout::Pointer | Layout::SelfRef | Layout::Object(_) | Layout::Array(_))
            })
            .collect(),
    }
}

/// What the pointer that load `i` reads from a struct object laid out as `fields` points
/// to: what the field it reads holds, `None` for memory without a derivative
/// (`Layout::Pointer`: an array of integers or symbols, such as a `Dict`'s keys).
/// Refused when the load may read fields that hold different kinds of memory (a tuple of
/// an array and a struct indexed at run time) or no field that holds a pointer.
fn loaded_field(m: &crate::llvm::Module, i: Value, fields: Fields, user: &str) -> Result<Option<Leaf>> {
    loaded_field_at(m, i, i.operand(0), fields, user)
}

/// `loaded_field` for load `i` reading address `p` of a struct object laid out as
/// `fields`.
fn loaded_field_at(m: &crate::llvm::Module, i: Value, p: Value, fields: Fields, user: &str) -> Result<Option<Leaf>> {
    let layouts = field_layouts(m, p, fields, true);
    if !layouts.is_empty() && layouts.iter().all(|l| **l == Layout::Pointer) {
        return Ok(None);
    }
    let leaves: Vec<Option<Leaf>> = layouts.iter().map(|l| l.pointee_leaf_in(fields)).collect();
    match leaves.first() {
        Some(&Some(leaf)) if leaves.iter().all(|l| *l == Some(leaf)) => Ok(Some(leaf)),
        _ => Err(loaded_field_error(i, if leaves.is_empty() { "no field" } else { "fields of different kinds" }, user)),
    }
}

fn loaded_field_error(i: Value, what: &str, user: &str) -> Error {
    Error::Unsupported(format!(
        "a pointer read from a differentiated struct where its layout has {what} (`{}`), in `{user}`{}",
        i.print().trim(),
        crate::names::where_(i)
    ))
}

/// What load `i` reads through a merge of addresses (a phi or select) into struct
/// objects, the merge's own layout `fields`: each address read by its own object's
/// layout (a loop over a list whose first node a model holds merges `&m.head` with
/// `&p.next`), refused when they disagree; and whether every address was known (a
/// loop's back edge may not be yet: checked again after, `Memory::compute`). An address
/// into other memory (a stack object, say) leaves the merge read as one object.
fn merged_loaded_field<'ctx>(
    m: &crate::llvm::Module,
    i: Value<'ctx>,
    fields: Fields,
    shadowed: &HashMap<Value<'ctx>, Leaf>,
    user: &str,
) -> Result<(Option<Leaf>, bool)> {
    let p = i.operand(0);
    let mut leaves = Vec::new();
    let mut complete = true;
    for v in merged(p) {
        match shadowed.get(&v) {
            _ if v == p => {}
            Some(Leaf::Object(f)) => leaves.push(loaded_field_at(m, i, v, f, user)?),
            Some(_) => return Ok((loaded_field(m, i, fields, user)?, true)),
            None => complete = false,
        }
    }
    leaves.dedup();
    match leaves.as_slice() {
        [] => Ok((loaded_field(m, i, fields, user)?, complete)),
        [one] => Ok((*one, complete)),
        _ => Err(loaded_field_error(i, "fields of different kinds", user)),
    }
}

/// For call `i` of a callee differentiated call by call (`names::RECURSIVE`) that
/// returns a pointer and is handed shadowed memory: what the memory it returns holds,
/// when it is the same whatever the callee returns (`returned_leaf`). The callee's
/// derivative functions then hand the result's shadow back (`transform::calls`), which
/// the caller reads as its own (a recursive function returning a fresh array, `g(x, k)
/// = k == 0 ? copy(x) : g(x, k - 1) .* x`). `None` for any other call.
pub fn callee_result_leaf<'ctx>(
    m: &'ctx crate::llvm::Module,
    i: Value<'ctx>,
    shadowed: &HashMap<Value<'ctx>, Leaf>,
) -> Option<Leaf> {
    let call = i.as_call().filter(|_| i.opcode() == Opcode::LLVMCall && i.ty().is_pointer())?;
    let h = call.called_function().filter(|h| h.has_string_attr(crate::names::RECURSIVE))?;
    // (An array of floats the caller allocates and hands on counts as shadowed: activity
    // gives it a shadow in a later round when derivative data is written into it, `x .*
    // 2` handed to the recursion; if it never gets one, the callee returning it is
    // refused, `transform::calls::write_result_shadows`.)
    let args: Vec<Option<Leaf>> = (0..call.call_arg_count())
        .map(|k| {
            let a = i.operand(k);
            shadowed.get(&a).copied().or_else(|| {
                let base = zero_offset_base(a);
                (at_offset_zero(a) && array_call(base) == Some(ArrayCall::Alloc))
                    .then(|| float_array_allocation_by_type(base))
                    .flatten()
            })
        })
        .collect();
    if args.iter().all(Option::is_none) {
        return None;
    }
    // (Once its derivative functions are being built, its body is in one of them, whose
    // first parameters are its own: a recursive call inside it.)
    let body = if h.is_declaration() {
        [".aug", ".fwd"].iter().find_map(|s| m.function(&format!("{}{s}", h.name())).filter(|g| !g.is_declaration()))?
    } else {
        h
    };
    returned_leaf(m, body, h, &args)
}

/// The layout of heap object `a` that callee body `body` allocates and returns, read off
/// the stores it makes into it (`heap_layout`) with what the arrays and objects stored
/// there are told by their types alone: the callee's own analysis, which gives them
/// their shadows, runs after its callers' (`Subject::returned_memory`).
fn returned_object_layout<'ctx>(
    m: &crate::llvm::Module,
    body: crate::llvm::Function<'ctx>,
    a: Value<'ctx>,
    args: &[Option<Leaf>],
) -> Option<Fields> {
    let mut by_type: HashMap<Value<'ctx>, Leaf> = HashMap::new();
    for i in body.blocks().into_iter().flat_map(|b| b.instructions()) {
        let leaf = if gc_allocation(i).is_some() { Some(Leaf::StackMixedF64) } else { array_leaf_by_type(i) };
        if let Some(l) = leaf {
            by_type.insert(i, l);
        }
    }
    // (The parameters' arrays are what the call site hands: a float copied from one
    // into a field as its bits is a float there, `heap_layout`.)
    for (p, leaf) in body.params().into_iter().zip(args) {
        if let Some(l) = leaf {
            by_type.insert(p, *l);
        }
    }
    let fields = heap_layout(m, a, &by_type, 4)?;
    Some(crate::request::intern(&fields))
}

/// Whether integer `v` is a `Float64`'s bits loaded from the data of an array of
/// `Float64` with a shadow (`shadowed`, at the array object or its cast; not an array of
/// integers or symbols beside differentiated ones, whose zero shadow is one too).
fn float_bits_load(v: Value, shadowed: &HashMap<Value, Leaf>) -> bool {
    let floats = |o: Value| {
        let base = zero_offset_base(o);
        [o, base].iter().any(|o| shadowed.get(o) == Some(&Leaf::ArrayF64))
            && !integer_array_allocation(base)
            && !name_array_allocation(base)
    };
    v.opcode_if_instruction() == Some(Opcode::LLVMLoad)
        && v.ty().int_width() == 64
        && data_object(v.operand(0)).is_some_and(floats)
}

/// The array object whose data pointer address `p` is based on (`load ptr, obj` then
/// address arithmetic).
fn data_object(p: Value) -> Option<Value> {
    let mut p = p;
    loop {
        match p.opcode_if_instruction()? {
            Opcode::LLVMGetElementPtr | Opcode::LLVMBitCast | Opcode::LLVMAddrSpaceCast => p = p.operand(0),
            Opcode::LLVMLoad => return Some(p.operand(0)),
            _ => return None,
        }
    }
}

/// What the memory callee `h` (its body in function `body`) returns holds, given what
/// its pointer parameters' memory holds (`args`): the same leaf for every value it may return, each a fresh array of
/// floats (by its type), a shadowed parameter, a copy of one, or the result of its own
/// recursive call (`nothing` and null aside). `None` when any other value may be
/// returned (an object, a global, another call's result): the result then has no shadow,
/// and derivative data reaching it is refused (`untracked`).
fn returned_leaf(
    m: &crate::llvm::Module,
    body: crate::llvm::Function,
    h: crate::llvm::Function,
    args: &[Option<Leaf>],
) -> Option<Leaf> {
    let params = body.params();
    let mut work = returned_values(body);
    let (mut leaf, mut seen) = (None, HashSet::new());
    while let Some(v) = work.pop() {
        if !seen.insert(v) || is_nothing(v) || is_null(v) {
            continue;
        }
        let found = match v.opcode_if_instruction() {
            Some(Opcode::LLVMPHI | Opcode::LLVMSelect) => {
                work.extend(merged(v));
                continue;
            }
            Some(Opcode::LLVMBitCast | Opcode::LLVMAddrSpaceCast) => {
                work.push(v.operand(0));
                continue;
            }
            Some(Opcode::LLVMCall) => match array_call(v) {
                Some(ArrayCall::Alloc) => float_array_allocation_by_type(v),
                Some(ArrayCall::Copy) => {
                    work.push(v.operand(0));
                    continue;
                }
                _ if v.as_call().and_then(|c| c.called_function()).is_some_and(|g| g == h || g == body) => continue,
                // (A mutable struct it allocates, laid out by what it stores there.)
                _ if gc_allocation(v).is_some() => returned_object_layout(m, body, v, args).map(Leaf::Object),
                // (A call Julia dispatches when it runs: a boxed float whose shadow is a
                // box, or an array of floats, as the code after the call reads it.)
                _ if is_splat(v) => Some(hook_result_leaf(v)),
                _ => None,
            },
            Some(_) => None,
            None => params.iter().take(args.len()).position(|p| *p == v).and_then(|k| args.get(k).copied().flatten()),
        };
        match (found, leaf) {
            (Some(l), None) => leaf = Some(l),
            (Some(l), Some(k)) if l == k => {}
            _ => return None,
        }
    }
    leaf
}

/// The heap objects (mutable structs) function `g` allocates and may return, through
/// merges and casts, each with the leaf its shadow has: a callee whose callers read
/// the shadow of the object it returns (`callee_result_leaf`) gives each one, before
/// anything is known of what it holds.
pub fn returned_objects<'ctx>(g: crate::llvm::Function<'ctx>) -> Vec<(Value<'ctx>, Leaf)> {
    let mut found: Vec<(Value<'ctx>, Leaf)> = merged_sources(returned_values(g), |v| gc_allocation(v).is_some())
        .into_iter()
        .map(|o| (o, Leaf::StackMixedF64))
        .collect();
    // (And the arrays and objects stored into them, as their types say, at any depth:
    // the layout the callers read them by, `returned_object_layout`.)
    let stores: Vec<Value<'ctx>> =
        g.blocks().into_iter().flat_map(|b| b.instructions()).filter(|i| i.opcode() == Opcode::LLVMStore).collect();
    let mut objects: HashSet<Value<'ctx>> = found.iter().map(|(o, _)| *o).collect();
    let mut arrays: HashSet<Value<'ctx>> = HashSet::new();
    let mut changed = true;
    while changed {
        changed = false;
        for &i in &stores {
            if !object_base(i.operand(1)).is_some_and(|o| objects.contains(&o)) {
                continue;
            }
            let a = zero_offset_base(i.operand(0));
            if !a.is_instruction() {
                continue;
            }
            if gc_allocation(a).is_some() && at_offset_zero(i.operand(0)) && objects.insert(a) {
                found.push((a, Leaf::StackMixedF64));
                changed = true;
                continue;
            }
            if arrays.contains(&a) {
                continue;
            }
            if let Some(l) = array_leaf_by_type(a) {
                arrays.insert(a);
                found.push((a, l));
            }
        }
    }
    found
}

/// The array allocations and copies return `r` may return, through merges and casts.
pub fn returned_allocations(r: Value) -> Vec<Value> {
    let returned = if r.num_operands() == 1 { vec![r.operand(0)] } else { Vec::new() };
    merged_sources(returned, |v| matches!(array_call(v), Some(ArrayCall::Alloc | ArrayCall::Copy)))
}

/// The leaf of the shadow array allocation `a` gets by its type alone: an array of
/// floats its own; an array of integers or symbols a zero one (`Leaf::ArrayF64`, as
/// beside differentiated arrays). `None` for anything else.
fn array_leaf_by_type(a: Value) -> Option<Leaf> {
    if array_call(a) != Some(ArrayCall::Alloc) {
        return None;
    }
    float_array_allocation_by_type(a)
        .or_else(|| (integer_array_allocation(a) || name_array_allocation(a)).then_some(Leaf::ArrayF64))
}

/// The values function `g` may return (each `ret`'s operand).
fn returned_values(g: crate::llvm::Function) -> Vec<Value> {
    g.blocks()
        .into_iter()
        .filter_map(|b| b.terminator())
        .filter(|t| t.opcode() == Opcode::LLVMRet && t.num_operands() == 1)
        .map(|t| t.operand(0))
        .collect()
}

/// The calls `keep` accepts that values `from` may be, through merges and casts.
fn merged_sources<'ctx>(from: Vec<Value<'ctx>>, keep: impl Fn(Value<'ctx>) -> bool) -> Vec<Value<'ctx>> {
    let (mut found, mut seen, mut work) = (Vec::new(), HashSet::new(), from);
    while let Some(v) = work.pop() {
        if !seen.insert(v) {
            continue;
        }
        match v.opcode_if_instruction() {
            Some(Opcode::LLVMPHI | Opcode::LLVMSelect) => work.extend(merged(v)),
            Some(Opcode::LLVMBitCast | Opcode::LLVMAddrSpaceCast) => work.push(v.operand(0)),
            Some(Opcode::LLVMCall) if keep(v) => found.push(v),
            _ => {}
        }
    }
    found
}

/// Whether `v` is a heap object the function allocates (a mutable struct, at its own
/// address) that has a shadow of its own (`Leaf::StackArraysF64`/`StackMixedF64`).
fn is_heap_object(v: Value, shadowed: &HashMap<Value, Leaf>) -> bool {
    shadowed.get(&v).is_some_and(|l| l.is_stack_object())
        && at_offset_zero(v)
        && gc_allocation(zero_offset_base(v)).is_some()
}

/// For merge `i` of a heap object the function allocates (with a shadow) and elements
/// loaded from an array the function allocates: that array, and the object's layout
/// (`heap_layout`). LLVM forwards the first struct of an array literal to the loop that
/// reads them all (`for l in [Layer(...), Layer(...)]`), so the loop's element is the
/// object itself, then the elements it loads: the array is an array of such objects
/// (`Leaf::Objects`; its other elements are stored there only if of the same layout,
/// `Memory::array_store_owner`, refused otherwise), and what is loaded from the merge
/// is read by that layout. `None` for any other merge.
fn forwarded_object_merge<'ctx>(
    m: &crate::llvm::Module,
    i: Value<'ctx>,
    origin: &HashMap<Value<'ctx>, Value<'ctx>>,
    shadowed: &HashMap<Value<'ctx>, Leaf>,
) -> Option<(Value<'ctx>, Fields)> {
    let values: Vec<Value<'ctx>> = merged(i).into_iter().filter(|&v| v != i).collect();
    let object = values.iter().copied().find(|&v| is_heap_object(v, shadowed))?;
    let loaded_from = |v: Value<'ctx>| {
        (v.opcode_if_instruction() == Some(Opcode::LLVMLoad))
            .then(|| origin.get(&v.operand(0)).copied())
            .flatten()
            .filter(|&o| array_call(o) == Some(ArrayCall::Alloc))
    };
    let array = values.iter().copied().find_map(loaded_from)?;
    let fields = crate::request::intern(&heap_layout(m, zero_offset_base(object), shadowed, 4)?);
    let fits = |v: Value<'ctx>| {
        v == object
            || loaded_from(v) == Some(array)
            || pointer_op(v) == Some(PointerOp::Merge) && shadowed.get(&v) == Some(&Leaf::Object(fields))
    };
    values.into_iter().all(fits).then_some((array, fields))
}

/// The layout of objects laid out as `a` and as `b`, one chosen by a branch: the same
/// fields, but for references one of them never sets or sets to `nothing`
/// (`heap_layout` leaves them out: Julia builds `Link(w, k, l.next)` once with
/// `nothing`, once with the node, when `l.next` may be either). `None` when they differ
/// otherwise.
fn joined_layout(a: &[(u64, Layout)], b: &[(u64, Layout)]) -> Option<Vec<(u64, Layout)>> {
    let mut joined: std::collections::BTreeMap<u64, Layout> = a.iter().cloned().collect();
    for (at, l) in b {
        match joined.get(at) {
            Some(k) if k != l => return None,
            Some(_) => {}
            None => {
                joined.insert(*at, l.clone());
            }
        }
    }
    let only_one =
        |(at, l): (&u64, &Layout)| a.iter().any(|(s, _)| s == at) && b.iter().any(|(s, _)| s == at) || is_reference(l);
    joined.iter().all(only_one).then(|| joined.into_iter().collect())
}

/// Whether a field of layout `l` holds a reference, which may be `nothing` or never set.
fn is_reference(l: &Layout) -> bool {
    matches!(l, Layout::SelfRef | Layout::Object(_) | Layout::Array(_) | Layout::Pointer)
}

/// Whether an object whose stores lay it out as `stored` is an object of layout
/// `wanted`: joined with it, it adds nothing (`joined_layout`), so it has the same fields
/// but for references it never sets, or sets to `nothing`: a new list node
/// `Link(w, k, nothing)`, its `next` a `Layout::SelfRef`. Nothing reads through its
/// shadow's field: the primal's `nothing` has no fields. A field that holds
/// an object of layout `wanted` itself is its `SelfRef` (`Link(w, k, l.next)`, the
/// node it links to read by its type).
fn lays_out_as(stored: &[(u64, Layout)], wanted: &[(u64, Layout)]) -> bool {
    let stored: Vec<(u64, Layout)> = stored
        .iter()
        .map(|(at, l)| match l {
            Layout::Object(g) if g.as_slice() == wanted => (*at, Layout::SelfRef),
            _ => (*at, l.clone()),
        })
        .collect();
    joined_layout(&stored, wanted).as_deref() == Some(wanted)
}

/// The layout of heap object `a` (a mutable struct the function allocates), from what
/// the function stores into it: `Float64` numbers, integers, differentiated arrays and
/// such objects in turn (laid out alike), each at a constant offset. `None` when a store
/// is at an offset not known or puts different kinds at one offset, when it stores a
/// `Float32` or a pointer of no known layout, or when the object's address goes anywhere
/// a store could be made without being seen (it is what `Memory::can_mirror` accepts).
///
/// Objects that link to one another round a loop (the nodes of a list the function
/// builds, `l = Node(x, l)`: `heap_family`) have one layout, what is stored into any of
/// them, and a field holding such a link is `Layout::SelfRef`, as in the layout Julia
/// gives a list passed as an argument: a list of any length is one finite layout.
fn heap_layout<'ctx>(
    m: &crate::llvm::Module,
    a: Value<'ctx>,
    shadowed: &HashMap<Value<'ctx>, Leaf>,
    depth: u32,
) -> Option<Vec<(u64, Layout)>> {
    if depth == 0 || gc_allocation(a).is_none() {
        return None;
    }
    let family = heap_family(m, a);
    let mut fields: std::collections::BTreeMap<u64, Layout> = std::collections::BTreeMap::new();
    let mut known = true;
    each_store_into(&family, |member, p, u| {
        // (A store through a merge with other memory — an element loaded from an
        // array of such objects, `forwarded_object_merge` — is read by the
        // array's layout, not this one's.)
        let slots = object_slots(m, p);
        if slots.is_none() && object_base(p) != Some(member) {
            return true;
        }
        let v = u.operand(0);
        let objects = || linked_objects(m, v).filter(|o| !o.is_empty());
        let link = || v.ty().is_pointer() && objects().is_some_and(|o| o.iter().all(|o| family.contains(o)));
        // (A merge of other such objects, of one layout: a struct chosen by a
        // branch, or replaced in a loop, then stored into this one.)
        let merged_objects = || {
            let objects = objects().filter(|o| o.iter().all(|o| is_heap_object(*o, shadowed)))?;
            let mut layouts = objects.iter().map(|o| heap_layout(m, *o, shadowed, depth - 1));
            let first = layouts.next()??;
            layouts.all(|l| l.as_ref() == Some(&first)).then_some(Layout::Object(first))
        };
        let layout = match (slots.clone(), v.ty().float_bits()) {
            (Some((b, off)), _) if !b.contains(&member) || off < 0 => None,
            (None, _) => None,
            (_, 64) => Some(Layout::F64),
            // (`Float32` only in its own box, `ingest::inline_float32_boxes`, or in a
            // tuple of numbers whose type says so.)
            (_, 32) if holds_float32(member) => Some(Layout::F32),
            (_, 32) => None,
            // (A float copied from a differentiated array as its bits, `load i64`
            // then `store i64`, as `instcombine` makes of `Cell(w, x[1])`: a float
            // field, as `retype_bit_copies` makes it once shadows are known.)
            _ if v.ty().is_int() && float_bits_load(v, shadowed) => Some(Layout::F64),
            _ if v.ty().is_int() => Some(Layout::Integer),
            _ if is_null(v) || is_nothing(v) => return true,
            // (A symbol, a task's state: memory without a derivative.)
            _ if is_name(v) => Some(Layout::Pointer),
            _ if link() => Some(Layout::SelfRef),
            _ => match shadowed.get(&v) {
                // (An array of integers beside differentiated ones has a zero
                // shadow; a callee reads its elements as integers.)
                Some(Leaf::ArrayF64) if integer_array_allocation(zero_offset_base(v)) => {
                    Some(Layout::array_of(Layout::Integer))
                }
                Some(Leaf::ArrayF64) if name_array_allocation(zero_offset_base(v)) => {
                    Some(Layout::array_of(Layout::Pointer))
                }
                Some(Leaf::ArrayF64) => Some(Layout::array_of(Layout::F64)),
                Some(Leaf::ArrayF32) => Some(Layout::array_of(Layout::F32)),
                Some(Leaf::Object(f)) => Some(Layout::Object(f.to_vec())),
                // (A dynamic call's boxed float, whose shadow is a box: an object of one
                // float, as the function's own boxes are. A closure's `Core.Box` holds
                // them when inference gives up on the captured variable.)
                Some(&leaf) if boxed_hook_result(v, leaf) => Some(Layout::Object(vec![(0, float_layout(leaf))])),
                _ if is_heap_object(v, shadowed) => {
                    heap_layout(m, zero_offset_base(v), shadowed, depth - 1).map(Layout::Object)
                }
                _ if pointer_op(v) == Some(PointerOp::Merge) => merged_objects(),
                _ => None,
            },
        };
        let off = slots.map_or(0, |(_, o)| o as u64);
        match layout {
            Some(l) if fields.get(&off).is_none_or(|k| *k == l) => {
                fields.insert(off, l);
            }
            _ => known = false,
        }
        known
    });
    known.then(|| fields.into_iter().collect())
}

/// Visits every store into a member of heap family `family`, through merges of the
/// members' addresses too (a store through a merge of objects, or of their fields'
/// addresses, may store into any of them): `visit(member, address, store)`, until it
/// returns `false`. Returns whether every visit returned `true`.
fn each_store_into<'ctx>(
    family: &[Value<'ctx>],
    mut visit: impl FnMut(Value<'ctx>, Value<'ctx>, Value<'ctx>) -> bool,
) -> bool {
    family.iter().all(|&member| {
        walk_uses(
            member,
            true,
            |d| !is_object_header(d),
            |p, u| u.opcode_if_instruction() != Some(Opcode::LLVMStore) || u.operand(1) != p || visit(member, p, u),
        )
    })
}

/// The heap objects pointer `v` may be: itself, at its own address, or what a merge of
/// them may be (`merged_heap_objects`: `nothing` and links beside them).
fn linked_objects<'ctx>(m: &crate::llvm::Module, v: Value<'ctx>) -> Option<Vec<Value<'ctx>>> {
    if at_offset_zero(v) && gc_allocation(zero_offset_base(v)).is_some() {
        return Some(vec![zero_offset_base(v)]);
    }
    (pointer_op(v) == Some(PointerOp::Merge)).then(|| merged_heap_objects(m, v)).flatten()
}

/// The heap objects that link to one another round a loop with `a` (the nodes of a list
/// the function builds, from the different allocations Julia makes of one constructor
/// call): a pointer that may be some of them (`linked_objects`) stored into a field of
/// one of those very objects makes them one family, and so on from each. Just `a` when
/// it links to nothing that links back.
fn heap_family<'ctx>(m: &crate::llvm::Module, a: Value<'ctx>) -> Vec<Value<'ctx>> {
    let mut family = vec![a];
    let mut k = 0;
    while k < family.len() {
        let b = family[k];
        k += 1;
        let mut joined = Vec::new();
        walk_uses(
            b,
            true,
            |d| !is_object_header(d),
            |p, u| {
                if u.opcode_if_instruction() == Some(Opcode::LLVMStore) && u.operand(0) == p && p.ty().is_pointer() {
                    let into = object_slots(m, u.operand(1)).map(|(o, _)| o).unwrap_or_default();
                    if let Some(objects) = linked_objects(m, p) {
                        if into.iter().any(|o| objects.contains(o)) {
                            joined.extend(objects);
                            joined.extend(into);
                        }
                    }
                }
                true
            },
        );
        for o in joined {
            if !family.contains(&o) {
                family.push(o);
            }
        }
    }
    family
}

/// Whether heap object `a` may hold a `Float32` field: a `Float32`'s box
/// (`is_float32_box`), or a tuple of numbers whose type tag says what each field holds
/// (`tuple_number_fields`).
pub fn holds_float32(a: Value) -> bool {
    is_float32_box(a) || constant_type_tag(a).and_then(tuple_number_fields).is_some()
}

/// Whether `v`, shadowed as `leaf`, is a splat's or dynamic call's result read as a
/// boxed float (`hook_result_leaf`), a merge of them (`hook_boxes`), or a box the
/// function allocates that such a merge made a float's (`Memory::compute`'s `fresh`): a
/// box whose shadow is a box.
pub fn boxed_hook_result(v: Value, leaf: Leaf) -> bool {
    matches!(leaf, Leaf::F64 | Leaf::F32)
        && (hook_boxes(v) || at_offset_zero(v) && gc_allocation(zero_offset_base(v)).is_some())
}

/// Whether `v` is a splat's or dynamic call's result, or a merge of such results and of
/// boxes the function allocates (`s = s > 1 ? s^2 : 3s` on a variable inference gives
/// up on), with at least one such result.
fn hook_boxes(v: Value) -> bool {
    hook_box_results(v).is_some_and(|calls| !calls.is_empty())
}

/// The splat or dynamic calls whose results `v` may be, through merges, when every
/// other value it may be is a box the function allocates, or an object Julia embeds by
/// address (a literal's box, or a singleton: the `_InitialValue()` a reduction over a
/// generator merges with its result, which it tests for an empty collection); `None`
/// otherwise.
fn hook_box_results(v: Value) -> Option<Vec<Value>> {
    hook_box_results_in(v, &mut Vec::new())
}

/// `hook_box_results`, also through the result of a function differentiated call by
/// call whose every return is such a box or merge (Base's pairwise `mapreduce_impl`
/// returning what the calls it dispatches on a closure's results return; its recursive
/// calls of itself aside): its derivative hands back the box's shadow
/// (`returned_leaf`). `within`: the callees whose returns are being looked at.
fn hook_box_results_in<'ctx>(v: Value<'ctx>, within: &mut Vec<Function<'ctx>>) -> Option<Vec<Value<'ctx>>> {
    let rt = crate::julia::current();
    let embedded = |w: Value| {
        w.is_constant()
            && w.ty().address_space() == Some(rt.tracked_address_space)
            && crate::llvm::const_address(w).is_some_and(|a| a > rt.object_tag && a % 8 == 0)
    };
    let (mut work, mut seen, mut calls) = (vec![v], HashSet::new(), Vec::new());
    while let Some(w) = work.pop() {
        if !seen.insert(w) {
            continue;
        }
        match pointer_op(w) {
            Some(PointerOp::Merge) => work.extend(merged(w)),
            _ if is_splat(w) => calls.push(w),
            _ if at_offset_zero(w) && gc_allocation(zero_offset_base(w)).is_some() => {}
            _ if embedded(w) => {}
            _ if returns_hook_boxes(w, within) => {}
            _ => return None,
        }
    }
    Some(calls)
}

/// Whether `w` calls a function differentiated call by call (`names::RECURSIVE`) whose
/// every return is a splat's or dynamic call's box, or a merge of them
/// (`hook_box_results_in`), not counting its calls of itself or of a callee `within`.
fn returns_hook_boxes<'ctx>(w: Value<'ctx>, within: &mut Vec<Function<'ctx>>) -> bool {
    let Some(h) = w
        .as_call()
        .filter(|_| w.opcode() == Opcode::LLVMCall && w.ty().is_pointer())
        .and_then(|c| c.called_function())
        .filter(|h| h.has_string_attr(crate::names::RECURSIVE))
    else {
        return false;
    };
    // (A call of itself, once its derivative functions are being built: its body is in
    // one of them, which calls the original, now a declaration, `callee_result_leaf`.)
    let caller = w.parent_block().parent_function().name();
    let own = [".aug", ".fwd"].iter().any(|s| caller == format!("{}{s}", h.name()));
    if within.contains(&h) || own {
        return true;
    }
    if h.is_declaration() {
        return false;
    }
    within.push(h);
    let returned = returned_values(h);
    let boxes = !returned.is_empty() && returned.into_iter().all(|r| hook_box_results_in(r, within).is_some());
    within.pop();
    boxes
}

/// The float type of `v` when it is a splat's or dynamic call's boxed float, with its
/// shadow or not yet given one (it gets one when it is handed shadowed memory, whose
/// reads may depend on what this one says; stored without one into memory that has a
/// shadow, its store is refused, `untracked`).
fn boxed_hook_leaf(v: Value, shadowed: &HashMap<Value, Leaf>) -> Option<Leaf> {
    let leaf = match shadowed.get(&v) {
        Some(&leaf) => leaf,
        None if is_splat(v) => hook_result_leaf(v),
        // (A merge of them, read as a result it may be is.)
        None if pointer_op(v) == Some(PointerOp::Merge) => hook_result_leaf(*hook_box_results(v)?.first()?),
        None => return None,
    };
    boxed_hook_result(v, leaf).then_some(leaf)
}

/// Whether address `p` is in the header of a splat's or dynamic call's boxed result (or
/// of a merge of them, `hook_boxes`), or of a box loaded from a field that holds them
/// (`heap_object_field`): its type tag, read by the write barrier and by type checks,
/// which is no float's bits.
fn hook_box_header(p: Value, mem: &Memory) -> bool {
    let boxed = |q: Value| {
        hook_boxes(q)
            || q.opcode_if_instruction() == Some(Opcode::LLVMLoad)
                && matches!(mem.leaf(q), Some(Leaf::F64 | Leaf::F32))
                && mem.leaf(q.operand(0)).is_some_and(Leaf::is_stack_object)
    };
    p.opcode_if_instruction() == Some(Opcode::LLVMGetElementPtr)
        && p.num_operands() == 2
        && p.operand(1).const_int().is_some_and(|k| k < 0)
        && boxed(p.operand(0))
}

/// The layout of a float of memory type `leaf` (`F64` or `F32`).
fn float_layout(leaf: Leaf) -> Layout {
    if leaf == Leaf::F32 {
        Layout::F32
    } else {
        Layout::F64
    }
}

/// Whether `a` is an object of 4 bytes from the collector: a `Float32`'s box, which
/// `ingest::inline_float32_boxes` makes of `jl_box_float32`.
fn is_float32_box(a: Value) -> bool {
    own_bytes(a) == Some(4)
}

/// Whether `heap_layout` of heap object `a` may become known in a later round of the
/// analysis: a store into it (or into a heap object stored there) stores an object the
/// function allocates that has no shadow yet. Activity gives one to an array where it
/// sees derivative data written (a broadcast's result, `Cell(w .+ x[k], v)`), which a
/// load of the field reached before it did in this round.
fn awaits_shadow<'ctx>(
    m: &crate::llvm::Module,
    a: Value<'ctx>,
    shadowed: &HashMap<Value<'ctx>, Leaf>,
    depth: u32,
) -> bool {
    if depth == 0 || gc_allocation(a).is_none() {
        return false;
    }
    !each_store_into(&heap_family(m, a), |_, _, u| {
        let v = u.operand(0);
        let base = zero_offset_base(v);
        let awaits = v.ty().is_pointer()
            && if shadowed.contains_key(&v) {
                is_heap_object(v, shadowed) && awaits_shadow(m, base, shadowed, depth - 1)
            } else {
                // (Or a dynamic call's boxed result, shadowed once an argument is: the
                // sum a closure's `Core.Box` is given back, `s += sum(...)`.)
                array_call(base) == Some(ArrayCall::Alloc) || gc_allocation(base).is_some() || is_splat(base)
            };
        !awaits
    })
}

/// What a pointer load `i` from a field of a heap object the function allocates reads,
/// when a heap object is stored there (a mutable struct holding another): a struct
/// object laid out as the stored objects' stores say (`heap_layout`), which is what a
/// callee handed the outer object reads too (`Memory::callee_leaf`). `None` when no heap
/// object is stored there (arrays: `stack_object_field`); refused when objects of
/// different layouts, or objects and other pointers, may be stored there.
fn heap_object_field<'ctx>(
    m: &crate::llvm::Module,
    i: Value<'ctx>,
    insts: &[Value<'ctx>],
    shadowed: &HashMap<Value<'ctx>, Leaf>,
    user: &str,
    awaiting: &mut Option<String>,
) -> Result<Option<Leaf>> {
    let Some(stored) = heap_field_stores(m, i.operand(0), insts) else { return Ok(None) };
    // (A merge of such objects stored there is the objects it may be: the link to the
    // previous node of a list built in a loop, `l = Node(x, l)`.)
    let mut stored: Vec<Value<'ctx>> = stored
        .into_iter()
        .flat_map(|v| match pointer_op(v) {
            Some(PointerOp::Merge) => merged_heap_objects(m, v).unwrap_or_else(|| vec![v]),
            _ => vec![v],
        })
        .collect();
    stored.dedup();
    // (`nothing` beside such objects: the end of a linked list, read as the primal's.
    // An object the function allocates without a shadow yet gets one from activity, in
    // the next round, or its store is refused, `untracked`: the first value of a
    // closure's `Core.Box`, beside the boxes of differentiated values.)
    stored.retain(|&v| {
        !is_nothing(v)
            && (is_heap_object(v, shadowed) || !at_offset_zero(v) || gc_allocation(zero_offset_base(v)).is_none())
    });
    let hook_results_stored = stored.iter().any(|v| boxed_hook_leaf(*v, shadowed).is_some());
    if !hook_results_stored && !stored.iter().any(|v| is_heap_object(*v, shadowed)) {
        return Ok(None);
    }
    let refuse = |what: &str| {
        Error::Unsupported(format!(
            "a mutable struct holding {what} in one field (`{}`), in `{user}`{}",
            i.print().trim(),
            crate::names::where_(i)
        ))
    };
    let mut layouts = Vec::new();
    let mut hook_results = false;
    for v in stored {
        if let Some(leaf) = boxed_hook_leaf(v, shadowed) {
            let layout = vec![(0, float_layout(leaf))];
            if !layouts.contains(&layout) {
                layouts.push(layout);
            }
            hook_results = true;
            continue;
        }
        // (A box the function allocates, stored beside them, gets its shadow from
        // activity in the next round: the first value of a closure's `Core.Box`.)
        let fresh_box = at_offset_zero(v) && gc_allocation(zero_offset_base(v)).is_some();
        if hook_results_stored && fresh_box && !is_heap_object(v, shadowed) {
            awaiting.get_or_insert(refuse("a box whose fields are not all in sight").to_string());
            return Ok(None);
        }
        if !is_heap_object(v, shadowed) && hook_results_stored {
            return Err(refuse(
                "a dynamic call's result beside other memory (a variable a closure captures and reassigns, of a type \
                 inference gives up on, holding an array: declare its type, `v::Vector{Float64} = ...`)",
            ));
        }
        if !is_heap_object(v, shadowed) {
            return Err(refuse("another mutable struct and other memory"));
        }
        let Some(layout) = heap_layout(m, zero_offset_base(v), shadowed, 4) else {
            // (An object stored there that awaits its shadow from activity: read as no
            // field this round; refused if the last round still reads it so.)
            let refusal = refuse("a mutable struct whose fields are not all in sight");
            if awaits_shadow(m, zero_offset_base(v), shadowed, 4) {
                awaiting.get_or_insert(refusal.to_string());
                return Ok(None);
            }
            return Err(refusal);
        };
        if !layouts.contains(&layout) {
            layouts.push(layout);
        }
    }
    match &layouts[..] {
        // (Boxed floats, among them a dynamic call's: a pointer loaded there points to
        // the number, as the call's own result does, and as in a stack object,
        // `stack_object_leaf`.)
        [layout] if hook_results && matches!(layout[..], [(0, Layout::F64)]) => Ok(Some(Leaf::F64)),
        [layout] if hook_results && matches!(layout[..], [(0, Layout::F32)]) => Ok(Some(Leaf::F32)),
        [layout] => Ok(Some(Leaf::Object(crate::request::intern(layout)))),
        _ => Err(refuse("mutable structs of different layouts")),
    }
}

/// For address `p` into the data of an array loaded from a field of heap objects the
/// function allocates (`c.w[i] = y` where nothing forwards `c.w` to the store: a callee
/// inlined after Julia's optimization, `Dict`'s `setindex!`): those objects and the
/// pointers stored into that field (`heap_field_stores`).
pub fn field_array_stores<'ctx>(
    m: &crate::llvm::Module,
    p: Value<'ctx>,
    insts: &[Value<'ctx>],
) -> Option<(Vec<Value<'ctx>>, Vec<Value<'ctx>>)> {
    let data = strip_address(p);
    if data.opcode_if_instruction() != Some(Opcode::LLVMLoad) {
        return None;
    }
    let array = zero_offset_base(data.operand(0));
    if array.opcode_if_instruction() != Some(Opcode::LLVMLoad) || !array.ty().is_pointer() {
        return None;
    }
    let field = array.operand(0);
    let objects = match object_slots(m, field) {
        Some((objects, _)) => objects,
        None => vec![object_base(field)?],
    };
    let stored = heap_field_stores(m, field, insts)?;
    Some((objects, stored))
}

/// The pointers stored into the field of heap objects the function allocates that
/// address `p` points to (through merges of such objects: `object_slots`); every
/// pointer stored into them when the field's offset is not known. `None` when `p` does
/// not point into such objects.
fn heap_field_stores<'ctx>(m: &crate::llvm::Module, p: Value<'ctx>, insts: &[Value<'ctx>]) -> Option<Vec<Value<'ctx>>> {
    let (objects, off) = match object_slots(m, p) {
        Some((objects, off)) => (objects, Some(off)),
        None => (vec![object_base(p)?], None),
    };
    if !objects.iter().all(|a| gc_allocation(*a).is_some()) {
        return None;
    }
    let stored = insts
        .iter()
        .filter(|s| s.opcode() == Opcode::LLVMStore && s.operand(0).ty().is_pointer() && !is_null(s.operand(0)))
        // (Or through a merge of such objects, or of their fields' addresses.)
        .filter(|s| {
            object_base(s.operand(1)).is_some_and(|b| objects.contains(&b))
                || object_slots(m, s.operand(1)).is_some_and(|(o, _)| o.iter().any(|b| objects.contains(b)))
        })
        .filter(|s| match (off, object_slots(m, s.operand(1))) {
            (Some(off), Some((_, at))) => off == at,
            _ => true,
        })
        .map(|s| s.operand(0))
        .collect();
    Some(stored)
}

/// What the pointer load `i` reads from a stack object holding differentiated memory
/// points to: what the shadowed pointers stored into that slot (into any slot, when the
/// load's is not known) point to — struct objects of one layout, or arrays of them —
/// and an array of `Float64` otherwise (what stack objects first held: views, closures
/// and tuples of arrays), or no shadow at all where only objects without derivative
/// data are stored (`is_inert_object`). A slot holding struct objects and other
/// pointers is refused.
///
/// (`None` also this round, where a struct object stored there awaits its shadow:
/// `heap_object_field`, which says so in `awaiting`.)
fn stack_object_field(
    m: &crate::llvm::Module,
    i: Value,
    insts: &[Value],
    shadowed: &HashMap<Value, Leaf>,
    user: &str,
    awaiting: &mut Option<String>,
) -> Result<Option<Leaf>> {
    // (Every pointer stored where `i` reads holds no derivative data, at a known slot:
    // the row lengths beside the boxed floats in `hvcat`'s arguments array, and the
    // constants an error path's call puts in the same array, which Julia reuses for
    // every call through its generic calling convention. `i` reads it as the primal
    // does.)
    if let Some((base, offset)) = alloca_slot(m, i.operand(0)) {
        let stored: Vec<Value> = insts
            .iter()
            .filter(|s| s.opcode() == Opcode::LLVMStore && s.operand(0).ty().is_pointer())
            .filter(|s| alloca_bases(s.operand(1)).contains(&base))
            .copied()
            .collect();
        let at_slot = |s: &Value| alloca_slot(m, s.operand(1)) == Some((base, offset));
        let known = stored.iter().all(|s| alloca_slot(m, s.operand(1)).is_some());
        let here: Vec<&Value> = stored.iter().filter(|s| at_slot(s)).collect();
        let inert = |v: Value| is_inert_object(v) || constant_object_without_floats(v);
        if known && !here.is_empty() && here.iter().all(|s| inert(s.operand(0))) && written_by_stores_only(base) {
            return Ok(None);
        }
    }
    stack_object_leaf(m, i, insts, shadowed, user, awaiting)
}

/// Whether only the function's own stores write into stack object `a`: its address (and
/// what is derived from it, merges included) is loaded from, stored into, handed to
/// lifetime markers or to the runtime's calls through the generic calling convention
/// and builtins (`jl_...`, which read their arguments array and never write it), or
/// stored into a slot nothing loads (where inlined generic code keeps its `args`).
/// Anything else — a callee, a `memcpy` — could write a pointer there unseen.
fn written_by_stores_only(a: Value) -> bool {
    let lifetime = |u: Value| u.as_call().is_some_and(is_lifetime_marker);
    every_use_through_merges(a, |p, u| match u.opcode_if_instruction() {
        Some(Opcode::LLVMLoad) => true,
        Some(Opcode::LLVMStore) if u.operand(0) != p => true,
        Some(Opcode::LLVMStore) => alloca_base(u.operand(1)).is_some_and(unread_slot),
        Some(Opcode::LLVMCall) => {
            lifetime(u)
                || u.as_call().and_then(|c| callee_name(c.called_operand())).is_some_and(|n| n.starts_with("jl_"))
        }
        _ => false,
    })
}

/// Whether stack slot `slot` is only stored into and handed to lifetime markers: nothing
/// reads what is stored there (where inlined generic code keeps its `args`, a volatile
/// store for the debugger).
fn unread_slot(slot: Value) -> bool {
    let lifetime = |u: Value| u.as_call().is_some_and(is_lifetime_marker);
    every_use(
        slot,
        |_| true,
        |_, w| lifetime(w) || w.opcode_if_instruction() == Some(Opcode::LLVMStore) && w.operand(0) != slot,
    )
}

/// Whether instruction `i` is in a block that ends in `unreachable`: a path that throws.
fn in_throwing_block(i: Value) -> bool {
    i.parent_block().terminator().is_some_and(|t| t.opcode() == Opcode::LLVMUnreachable)
}

/// Whether call `i` is followed in its block only by traps and `unreachable`: Julia's
/// code after a call its inference says never returns (it throws).
fn only_trap_follows(i: Value) -> bool {
    let mut next = i.next_instruction();
    while let Some(n) = next {
        match n.opcode() {
            Opcode::LLVMUnreachable => return true,
            Opcode::LLVMCall
                if n.as_call().is_some_and(|c| callee_name(c.called_operand()).as_deref() == Some("llvm.trap")) => {}
            _ => return false,
        }
        next = n.next_instruction();
    }
    false
}

/// Whether stack slot `slot` is read only by calls that throw (their block ends in
/// `unreachable`: the argument array of the error a failed type assertion raises), so
/// that what is stored into it never reaches code that returns.
fn error_path_slot(slot: Value) -> bool {
    every_use(
        slot,
        |_| true,
        |_, u| {
            u.as_call().is_some_and(|c| is_lifetime_marker(c) || in_throwing_block(u))
                || u.opcode_if_instruction() == Some(Opcode::LLVMStore) && u.operand(0) != slot
        },
    )
}

/// `stack_object_field` of a load `i` from a slot that may hold derivative data.
fn stack_object_leaf(
    m: &crate::llvm::Module,
    i: Value,
    insts: &[Value],
    shadowed: &HashMap<Value, Leaf>,
    user: &str,
    awaiting: &mut Option<String>,
) -> Result<Option<Leaf>> {
    let mut waits = None;
    if let Some(leaf) = heap_object_field(m, i, insts, shadowed, user, &mut waits)? {
        return Ok(Some(leaf));
    }
    if let Some(refusal) = waits {
        awaiting.get_or_insert(refusal);
        return Ok(None);
    }
    // A heap object's field holds the arrays stored there (`Memory::can_mirror`): of
    // `Float32` only if every one is.
    if let Some(stored) = heap_field_stores(m, i.operand(0), insts) {
        let f32 = stored.iter().filter_map(|v| shadowed.get(v)).map(|l| *l == Leaf::ArrayF32).collect::<HashSet<_>>();
        return match f32.len() {
            2 => Err(Error::Unsupported(format!(
                "a mutable struct that holds a `Float32` array and a `Float64` one in one field (`{}`), in \
                 `{user}`{}",
                i.print().trim(),
                crate::names::where_(i)
            ))),
            _ if f32.contains(&true) => Ok(Some(Leaf::ArrayF32)),
            _ => Ok(Some(Leaf::ArrayF64)),
        };
    }
    let slot = alloca_slot(m, i.operand(0));
    let bases = alloca_bases(i.operand(0));
    // A rule's result written there (a factorization object) holds arrays of the float
    // type the rule says.
    // (The buffer is the call's operand: a user of the slot, or of a cast of it.)
    let mut near = Vec::new();
    for b in &bases {
        for u in b.users() {
            if pointer_op(u) == Some(PointerOp::Derive) {
                near.extend(u.users());
            }
            near.push(u);
        }
    }
    let rule_result = near.into_iter().find_map(|c| match rule_sret_buffer(c) {
        Some((a, crate::names::RuleSret::Arrays { f32 })) if bases.contains(&a) => Some(f32),
        _ => None,
    });
    if let Some(f32) = rule_result {
        return Ok(Some(if f32 { Leaf::ArrayF32 } else { Leaf::ArrayF64 }));
    }
    let mut layouts = HashSet::new();
    let mut others = false;
    // (The float type of the arrays stored there: `Float32` only if every one is.)
    let mut arrays_f32 = None;
    // (Boxed numbers stored there, as the memory they point to: a splat's result, or a
    // box of one float the function allocates, side by side in the arguments array of
    // a call through the generic calling convention, `hvcat(rows, x[1], max(x...))`.)
    let mut boxes = HashSet::new();
    let mut box_layouts = HashSet::new();
    for s in insts.iter().filter(|s| s.opcode() == Opcode::LLVMStore && s.operand(0).ty().is_pointer()) {
        let into = match (slot, alloca_slot(m, s.operand(1))) {
            (Some(a), Some(b)) => a == b,
            (Some((a, _)), None) => alloca_bases(s.operand(1)).contains(&a),
            (None, _) => alloca_bases(s.operand(1)).iter().any(|b| bases.contains(b)),
        };
        match shadowed.get(&s.operand(0)) {
            Some(l @ (Leaf::Object(_) | Leaf::Objects(_))) if into => {
                layouts.insert(*l);
            }
            // (A heap object the function allocates, with a shadow: read by its layout,
            // as from another heap object's field, `heap_object_field`; a boxed float in
            // the arguments array of a call through Julia's generic calling convention.)
            Some(_) if into && is_heap_object(s.operand(0), shadowed) => {
                let object = zero_offset_base(s.operand(0));
                let Some(layout) = heap_layout(m, object, shadowed, 4) else {
                    let refusal = Error::Unsupported(format!(
                        "a struct, tuple or closure that holds a mutable struct whose fields are not all in sight \
                         (`{}`), in `{user}`{}",
                        i.print().trim(),
                        crate::names::where_(i)
                    ));
                    // (Or not yet: `heap_object_field`.)
                    if awaits_shadow(m, object, shadowed, 4) {
                        awaiting.get_or_insert(refusal.to_string());
                        return Ok(None);
                    }
                    return Err(refusal);
                };
                let leaf = Leaf::Object(crate::request::intern(&layout));
                match layout.as_slice() {
                    [(0, Layout::F64)] => box_layouts.insert((Leaf::F64, leaf)),
                    [(0, Layout::F32)] => box_layouts.insert((Leaf::F32, leaf)),
                    _ => layouts.insert(leaf),
                };
            }
            Some(l @ (Leaf::F64 | Leaf::F32)) if into => {
                boxes.insert(*l);
            }
            Some(l) if into => {
                others = true;
                let f32 = *l == Leaf::ArrayF32;
                if *arrays_f32.get_or_insert(f32) != f32 {
                    return Err(Error::Unsupported(format!(
                        "a struct, tuple or closure that holds a `Float32` array and a `Float64` one in one place \
                         (`{}`), in `{user}`{}",
                        i.print().trim(),
                        crate::names::where_(i)
                    )));
                }
            }
            _ => {}
        }
    }
    // (Boxes the function allocates are objects of one float, unless a splat's result
    // is stored there too: then all are read as the number they point to.)
    if boxes.is_empty() {
        layouts.extend(box_layouts.into_iter().map(|(_, l)| l));
    } else {
        boxes.extend(box_layouts.into_iter().map(|(f, _)| f));
    }
    match (layouts.len(), others) {
        // Boxed numbers only (of one float type): a pointer loaded there points to the
        // number, as the box's own pointer does.
        (0, false) if boxes.len() == 1 => Ok(boxes.into_iter().next()),
        _ if !boxes.is_empty() => Err(Error::Unsupported(format!(
            "a struct, tuple or closure that holds a boxed differentiated number beside other differentiated \
             memory, or a `Float32` beside a `Float64`, in one place (`{}`), in `{user}`{}",
            i.print().trim(),
            crate::names::where_(i)
        ))),
        (0, _) if arrays_f32 == Some(true) => Ok(Some(Leaf::ArrayF32)),
        (0, _) => Ok(Some(Leaf::ArrayF64)),
        (1, false) => Ok(layouts.into_iter().next()),
        _ => Err(Error::Unsupported(format!(
            "a struct, tuple or closure that holds a differentiated struct beside other differentiated memory in \
             one place (`{}`), in `{user}`{}",
            i.print().trim(),
            crate::names::where_(i)
        ))),
    }
}

/// Whether object `r` is stored as a value (itself or cast) into memory other than the
/// stack (GC frame slots root it; the heap could hold it in an array's data).
fn stored_as_value(r: Value) -> bool {
    !every_use(
        r,
        |_| true,
        |p, u| {
            let store = u.opcode_if_instruction() == Some(Opcode::LLVMStore) && u.operand(0) == p;
            !store || !alloca_bases(u.operand(1)).is_empty() && alloca_base(u.operand(1)).is_some()
        },
    )
}

/// The objects pointer `o` may be when it is loaded from a stack object (the tuple of
/// arrays `hcat(x, y)` indexes, a closure): every pointer stored into that stack object,
/// each followed the same way. `None` when that cannot be told: `o` is not such a load,
/// or the stack object's address goes anywhere but loads, stores into it and lifetime
/// markers (a call could store into it, a `memcpy` copy whole objects in).
fn stack_loaded_objects(o: Value, depth: u32) -> Option<Vec<Value>> {
    if depth == 0 || o.opcode_if_instruction() != Some(Opcode::LLVMLoad) {
        return None;
    }
    let bases = alloca_bases(o.operand(0));
    if bases.is_empty() {
        return None;
    }
    let mut stored = Vec::new();
    for a in bases {
        let closed = every_use(
            a,
            |_| true,
            |p, u| match u.opcode_if_instruction() {
                Some(Opcode::LLVMLoad) => true,
                Some(Opcode::LLVMStore) if u.operand(1) == p && u.operand(0) != p => {
                    let s = u.operand(0);
                    stored.push(zero_offset_base(s));
                    // (Julia's object pointers live in address spaces LLVM never turns
                    // into integers, but for an explicit `ptrtoint`.)
                    s.opcode_if_instruction() != Some(Opcode::LLVMPtrToInt)
                }
                // (Its address kept in a slot nothing reads: an inlined generic entry's
                // `args`.)
                Some(Opcode::LLVMStore) if u.operand(0) == p && p == a => {
                    alloca_base(u.operand(1)).is_some_and(unread_slot)
                }
                // (A throw reading it: `jl_bounds_error_unboxed_int`; the runtime's bounds
                // errors only read what they are handed, `jl_bounds_error_tuple_int` the
                // arguments array it prints.)
                Some(Opcode::LLVMCall) => u.as_call().is_some_and(|c| {
                    let noreturn =
                        c.has_fn_attr("noreturn") || c.called_function().is_some_and(|f| f.has_fn_attr("noreturn"));
                    let bounds_error =
                        callee_name(c.called_operand()).is_some_and(|n| n.starts_with("jl_bounds_error"));
                    is_lifetime_marker(c)
                        || noreturn
                            && (bounds_error
                                || (0..c.call_arg_count())
                                    .filter(|&k| u.operand(k) == p)
                                    .all(|k| c.has_arg_attr(k, "readonly")))
                }),
                _ => false,
            },
        );
        if !closed {
            return None;
        }
    }
    let mut objects = Vec::new();
    for s in stored.into_iter().filter(|s| s.ty().is_pointer()) {
        for c in stack_loaded_objects(s, depth - 1).unwrap_or_else(|| vec![s]) {
            if !objects.contains(&c) {
                objects.push(c);
            }
        }
    }
    Some(objects)
}

/// Whether pointer `p` is its base object's own address.
pub fn at_offset_zero(p: Value) -> bool {
    let base = zero_offset_base(p);
    !base.is_instruction() || base.opcode() != Opcode::LLVMGetElementPtr
}

/// LLVM copies floats as integers (`load i64` + `store i64` is what `instcombine` makes
/// of `y[i] = r[i]`). In shadowed memory that would hide the derivative, so integer
/// loads of a float's width from shadowed memory become float loads plus a bitcast, and
/// stores of such bitcasts become float stores, wherever they store. (Not where the
/// type analysis finds integers: an array of integers beside differentiated arrays in a
/// struct has a zero shadow too, `Layout::array_of(Layout::Integer)`, and its elements'
/// bits go on as integers, a `Dict`'s keys into a hash.) Returns whether anything changed.
pub fn retype_bit_copies(
    m: &crate::llvm::Module,
    f: Function,
    mem: &Memory,
    types: &crate::analysis::types::Types,
) -> crate::llvm::Built<bool> {
    let b = m.builder();
    let mut changed = false;
    let insts: Vec<Value> = f.blocks().into_iter().flat_map(|bb| bb.instructions()).collect();
    // (Both lists are made first: retyping a load erases the stores of its bits.)
    let (stores, loads): (Vec<Value>, Vec<Value>) = insts
        .into_iter()
        .filter(|i| i.opcode() == Opcode::LLVMStore || i.opcode() == Opcode::LLVMLoad && i.ty().is_int())
        .partition(|i| i.opcode() == Opcode::LLVMStore);
    for i in stores {
        // A constant integer of a float's width stored into a differentiated array of
        // floats: the float of the same bits (a tuple's `Int` beside a float, `[(x[k],
        // 1)]`, the bits of a constant float), whose store zeroes the shadow there like
        // any constant's. (An integer field's shadow holds nothing that is read.)
        if i.operand(0).const_int().is_none() || !mem.is_data(i.operand(1)) {
            continue;
        }
        let float = match (mem.leaf(i.operand(1)), i.operand(0).ty().int_width()) {
            (Some(Leaf::ArrayF64), 64) => m.f64(),
            (Some(Leaf::ArrayF32), 32) => m.f32(),
            _ => continue,
        };
        b.before(i)?;
        let x = b.bitcast(i.operand(0), float)?;
        b.store(x, i.operand(1))?;
        i.erase();
        changed = true;
    }
    for i in loads {
        let ty = i.ty();
        // A float field of a stack object holding differentiated numbers (a tuple of
        // floats `push!(a, u, v)` copies from): where every store puts a float.
        let number_slot = mem.leaf(i.operand(0)) == Some(Leaf::StackMixedF64) && ty.int_width() == 64;
        if number_slot && floats_only_stored_at(m, i.operand(0)) {
            changed |= retype_load(&b, i, m.f64())?;
            continue;
        }
        // A number out of a merge of boxes of numbers, floats' and integers' (the field
        // `hvcat` picks out of a tuple of numbers of different types,
        // `ingest::explicit_tuple_getfield`), read with the floats' width: the float (an
        // integer's bits stay its bits, and its box is its own shadow).
        if mem.leaf(i.operand(0)) == Some(Leaf::StackMixedF64) {
            match (number_boxes(i.operand(0)), ty.int_width()) {
                (Some(8), 64) => {
                    changed |= retype_load(&b, i, m.f64())?;
                    continue;
                }
                (Some(4), 32) => {
                    changed |= retype_load(&b, i, m.f32())?;
                    continue;
                }
                _ => {}
            }
        }
        // A number of a struct of floats a call returned through memory (the `(value,
        // tangent)` of a nested `autodiff_deferred(Forward, ...)`), copied as bits.
        let returned = alloca_base(i.operand(0)).and_then(float_sret_element);
        if let Some(float) =
            returned.filter(|&f| f == m.f64() && ty.int_width() == 64 || f == m.f32() && ty.int_width() == 32)
        {
            changed |= retype_load(&b, i, float)?;
            continue;
        }
        // A `Float32` field of a struct object read as 32 bits (the number of a `Float32`'s
        // box, `ingest::inline_float32_boxes`, which `hvcat` copies), wherever the pointer
        // comes from: as an integer it would carry no derivative.
        let f32_field = |fields| field_layouts(m, i.operand(0), fields, false).contains(&&Layout::F32);
        if matches!(mem.leaf(i.operand(0)), Some(Leaf::Object(fields)) if ty.int_width() == 32 && f32_field(fields)) {
            changed |= retype_load(&b, i, m.f32())?;
            continue;
        }
        // A literal's bits: a number read as an integer out of the box of a float literal
        // (Julia embeds it by address; `hvcat` copies the literals of `[1.0 0.0; 1.0
        // 2.0]` from its arguments array into the matrix), stored into a differentiated
        // array: the constant float, whose store zeroes the shadow there.
        if let Some(float) = literal_bits(m, i, mem) {
            changed |= retype_load(&b, i, float)?;
            continue;
        }
        if !mem.is_data(i.operand(0)) || hook_box_header(i.operand(0), mem) {
            continue;
        }
        let integers =
            |t: &crate::analysis::types::TypeTree| t.get(&[0, 0]) == Some(crate::analysis::types::Kind::Integer);
        if types.tree(i.operand(0)).is_some_and(integers) {
            continue;
        }
        let float = match (mem.leaf(i.operand(0)), ty.int_width()) {
            (Some(Leaf::ArrayF64 | Leaf::F64), 64) => m.f64(),
            // A struct object's field: as its layout says (an integer stays one).
            (Some(Leaf::Object(fields)), 64)
                if field_layouts(m, i.operand(0), fields, false).contains(&&Layout::F64) =>
            {
                m.f64()
            }
            (Some(Leaf::ArrayF32 | Leaf::F32), 32) => m.f32(),
            _ => continue,
        };
        changed |= retype_load(&b, i, float)?;
    }
    Ok(changed)
}

/// The float type of integer load `i` when it reads a float literal's box (the constant
/// itself, or a pointer loaded from a stack object that holds only such boxes, of
/// floats of `i`'s width, and integer constants) and its bits are stored into a
/// differentiated float array of that width: `retype_bit_copies` makes it a float.
/// `None` otherwise.
fn literal_bits<'ctx>(
    m: &'ctx crate::llvm::Module,
    i: Value<'ctx>,
    mem: &Memory<'ctx>,
) -> Option<crate::llvm::Type<'ctx>> {
    let (float, leaf) = match i.ty().int_width() {
        64 => (m.f64(), Leaf::ArrayF64),
        32 => (m.f32(), Leaf::ArrayF32),
        _ => return None,
    };
    let into_data = i.users().into_iter().any(|u| {
        u.opcode() == Opcode::LLVMStore
            && u.operand(0) == i
            && mem.is_data(u.operand(1))
            && mem.leaf(u.operand(1)) == Some(leaf)
    });
    if !into_data || !at_offset_zero(i.operand(0)) {
        return None;
    }
    let p = zero_offset_base(i.operand(0));
    let objects = if p.is_constant() { vec![p] } else { stack_loaded_objects(p, 4)? };
    // (Beside the integer constants the same array holds, which the load never reads
    // there: `hvcat`'s tuple of row lengths. Immutable constants all: whatever bits the
    // load reads carry no derivative.)
    let literal = |o: &Value| constant_boxed_float(*o).is_some_and(|(_, l, _)| l == leaf);
    let constant = |o: &Value| literal(o) || integer_constant_object(*o);
    (objects.iter().any(literal) && objects.iter().all(constant)).then_some(float)
}

/// The name of the integer bits of a load `retype_load` made a float's: they may be an
/// integer's (`diagnostics` does not take them for a float's bits).
pub const RETYPED_BITS: &str = "ox.retyped.bits";

/// Integer load `i` as a load of `float` and a bitcast, its stores storing the float.
fn retype_load(b: &crate::llvm::Builder, i: Value, float: crate::llvm::Type) -> crate::llvm::Built<bool> {
    let ty = i.ty();
    {
        b.before(i)?;
        let x = b.load(float, i.operand(0))?;
        let bits = b.bitcast(x, ty)?;
        bits.set_name(RETYPED_BITS);
        for u in i.users() {
            // The bits read back as the float (a store to memory and a load from it,
            // which LLVM forwarded): the float itself, whose derivative the round trip
            // through an integer would drop.
            if u.opcode() == Opcode::LLVMBitCast && u.ty() == float {
                u.replace_all_uses_with(x);
                u.erase();
                continue;
            }
            // The float is stored wherever the bits went, shadowed memory or not (same
            // bytes): a fresh array it lands in then asks for a shadow like any other.
            if u.opcode() == Opcode::LLVMStore && u.operand(0) == i {
                b.before(u)?;
                b.store(x, u.operand(1))?;
                u.erase();
            }
        }
        // (Bits no other use reads are not left behind: a float's bits with no use
        // would still count as derivative data leaving what the engine follows.)
        if i.users().is_empty() {
            bits.erase();
        } else {
            i.replace_all_uses_with(bits);
        }
        i.erase();
    }
    Ok(true)
}

/// Whether every store into the stack object `p` points into, at `p`'s constant offset,
/// stores a `double` (or a `double`'s bits, which `retype_bit_copies` makes one), and
/// nothing else may write there (a store at an unknown offset, a call given its
/// address).
fn floats_only_stored_at(m: &crate::llvm::Module, p: Value) -> bool {
    // (At an offset not known, a loop over a tuple's fields: every store stores a float.)
    let (base, offset) = match object_slot(m, p) {
        Some((base, offset)) => (base, Some(offset)),
        None => match alloca_bases(p)[..] {
            [base] => (base, None),
            _ => return false,
        },
    };
    if base.opcode() != Opcode::LLVMAlloca {
        return false;
    }
    let float = |v: Value| {
        v.ty().float_bits() == 64
            || v.opcode_if_instruction() == Some(Opcode::LLVMBitCast) && v.operand(0).ty().float_bits() == 64
    };
    let mut stored = false;
    // (Through address arithmetic and merges of addresses: a store through a merge is
    // at an offset not known.)
    let (mut seen, mut work) = (HashSet::new(), vec![base]);
    let mut all = true;
    while let Some(q) = work.pop() {
        if !seen.insert(q) {
            continue;
        }
        for u in q.users() {
            let ok = match u.opcode_if_instruction() {
                Some(
                    Opcode::LLVMGetElementPtr
                    | Opcode::LLVMBitCast
                    | Opcode::LLVMAddrSpaceCast
                    | Opcode::LLVMPHI
                    | Opcode::LLVMSelect,
                ) if u.ty().is_pointer() => {
                    work.push(u);
                    true
                }
                Some(Opcode::LLVMLoad | Opcode::LLVMICmp) => true,
                Some(Opcode::LLVMStore) if u.operand(1) == q && u.operand(0) != q => {
                    match (object_slot(m, q), offset) {
                        (Some((_, at)), Some(offset)) if at == offset => {
                            stored = true;
                            float(u.operand(0))
                        }
                        (Some((_, at)), Some(offset)) => {
                            at + m.size_of(u.operand(0).ty()) as i64 <= offset || offset + 8 <= at
                        }
                        (Some((_, at)), None) => {
                            stored = true;
                            at % 8 == 0 && float(u.operand(0))
                        }
                        (None, _) => false,
                    }
                }
                Some(Opcode::LLVMCall) => u.as_call().is_some_and(is_lifetime_marker),
                _ => false,
            };
            all &= ok;
        }
    }
    all && stored
}

/// Shadowed pointers into array data: pointers loaded from an array object (its data
/// pointer, at the object's own address) and what derives from them; a pointer loaded
/// from data is an object again (arrays of arrays), and so is one loaded from an array
/// object at another offset (the array that owns a shared buffer, which Julia's write
/// barrier reads). A root that is a struct of floats (`Leaf::F64`/`F32`) is data
/// itself, and so is a struct or stack object of arrays (what is loaded from it is an
/// array object). Objects and data are found together, each step from what is known of
/// its operands, so that the order of the instructions (a loop's phis) cannot make a
/// load from data look like a load from an object.
fn data_pointers<'ctx>(
    insts: &[Value<'ctx>],
    shadowed: &HashMap<Value<'ctx>, Leaf>,
    roots: &[(Value<'ctx>, Leaf)],
    aggregates: &HashMap<Value<'ctx>, Paths<'ctx>>,
) -> HashSet<Value<'ctx>> {
    // Containers: a struct of floats holds data; a struct of arrays holds array objects
    // (loaded from it like a data pointer from an array, one level up).
    let plain: HashSet<Value<'ctx>> = roots
        .iter()
        .filter(|(_, l)| matches!(l, Leaf::F64 | Leaf::F32 | Leaf::Object(_)) || l.is_stack_object())
        .map(|(v, _)| *v)
        .collect();
    // Array objects among the roots are objects, also when loaded (a `Const` argument
    // shadowed by a zeroed copy is the load from the argument array).
    let array_roots: HashSet<Value<'ctx>> =
        roots.iter().filter(|(_, l)| matches!(l, Leaf::ArrayF64 | Leaf::ArrayF32)).map(|(v, _)| *v).collect();
    let mut data: HashSet<Value<'ctx>> = HashSet::new();
    let mut objects: HashSet<Value<'ctx>> = array_roots.clone();
    let mut changed = true;
    while changed {
        changed = false;
        for &i in insts {
            let Some(&leaf) = shadowed.get(&i) else { continue };
            if data.contains(&i) || objects.contains(&i) {
                continue;
            }
            // (`Some(true)`: data; `Some(false)`: an object; `None`: not known yet.)
            let kind = match leaf {
                // Leaves that say which they are: a struct object (one a struct or an
                // array holds, too) and addresses in it, an array of them and its data.
                Leaf::Object(_) | Leaf::ObjectsData(_) => Some(true),
                Leaf::Objects(_) => Some(false),
                _ if plain.contains(&i) || leaf.is_stack_object() => Some(true),
                _ => match pointer_op(i) {
                    Some(PointerOp::Derive | PointerOp::Merge) => {
                        let from: Vec<Value<'ctx>> =
                            if pointer_op(i) == Some(PointerOp::Merge) { merged(i) } else { vec![i.operand(0)] };
                        if from.iter().any(|v| data.contains(v)) {
                            Some(true)
                        } else if from.iter().any(|v| objects.contains(v)) {
                            Some(false)
                        } else {
                            None
                        }
                    }
                    // (A boxed number read out of a stack object, `stack_object_leaf`:
                    // its memory is the number.)
                    Some(PointerOp::Load) if matches!(leaf, Leaf::F64 | Leaf::F32) => Some(true),
                    Some(PointerOp::Load) => {
                        let p = i.operand(0);
                        if data.contains(&p) {
                            Some(false)
                        } else if objects.contains(&p) {
                            Some(at_offset_zero(p))
                        } else if !shadowed.contains_key(&p) {
                            Some(true)
                        } else {
                            None
                        }
                    }
                    // Out of an aggregate: what was put in at that path.
                    None if i.opcode() == Opcode::LLVMExtractValue => {
                        let index = i.indices();
                        let sources = aggregates
                            .get(&i.operand(0))
                            .and_then(|ps| ps.iter().find(|p| p.index == index))
                            .map(|p| p.sources.clone())
                            .unwrap_or_default();
                        if sources.iter().any(|s| data.contains(s)) {
                            Some(true)
                        } else if sources.iter().any(|s| objects.contains(s)) || sources.is_empty() {
                            Some(false)
                        } else {
                            None
                        }
                    }
                    // A splat call's result is a boxed float, whose memory is the float,
                    // or an array of floats.
                    None if is_splat(i) => Some(matches!(hook_result_leaf(i), Leaf::F64 | Leaf::F32)),
                    // Arrays a call makes (an allocation, a copy, a rule's result).
                    None => Some(false),
                },
            };
            match kind {
                Some(true) if !array_roots.contains(&i) => {
                    data.insert(i);
                    changed = true;
                }
                Some(_) => {
                    objects.insert(i);
                    changed = true;
                }
                None => {}
            }
        }
        // (A cycle of merges whose operands are all unknown: objects, as a load from a
        // pointer that is not data would have made them before.)
        if !changed {
            if let Some(&i) = insts.iter().find(|&&i| {
                shadowed.contains_key(&i)
                    && !data.contains(&i)
                    && !objects.contains(&i)
                    && matches!(pointer_op(i), Some(PointerOp::Derive | PointerOp::Merge | PointerOp::Load))
            }) {
                objects.insert(i);
                changed = true;
            }
        }
    }
    data
}

/// The smallest set holding `seed` and the instructions closed under `member(i, set)`,
/// by iteration (loops and phis make a member depend on later ones).
pub fn grow_to_fixpoint<'ctx>(
    insts: &[Value<'ctx>],
    seed: HashSet<Value<'ctx>>,
    member: impl Fn(Value<'ctx>, &HashSet<Value<'ctx>>) -> bool,
) -> HashSet<Value<'ctx>> {
    let mut set = seed;
    let mut changed = true;
    while changed {
        changed = false;
        for &i in insts {
            if !set.contains(&i) && member(i, &set) {
                set.insert(i);
                changed = true;
            }
        }
    }
    set
}

/// Stores of pointers into stack slots that no load reads back: Julia's GC frame slots,
/// which root arrays for the collector and carry no derivative. Slots are matched by
/// alloca and constant byte offset; a load at an unknown offset (through a merge of
/// addresses, say: the loop over a splatted call's argument array) counts for every
/// alloca it may read, and so does a call handed an address into one (the argument
/// array of a dynamic call, which the callee reads). Lifetime markers, `memset` and
/// calls that never return read nothing; a call reading a value of a type it is given
/// (`typed_read`) reads that value's bytes only, and so does a `memcpy` of a constant
/// length from a slot (`copied_bytes`).
pub fn inert_pointer_stores<'ctx>(m: &'ctx crate::llvm::Module, insts: &[Value<'ctx>]) -> HashSet<Value<'ctx>> {
    let mut read = HashSet::new();
    for i in insts.iter().filter(|i| i.opcode() == Opcode::LLVMLoad) {
        match alloca_slot(m, i.operand(0)) {
            Some((a, off)) => {
                read.insert((a, Some(off)));
            }
            None => read.extend(alloca_bases(i.operand(0)).into_iter().map(|a| (a, None))),
        }
    }
    for (i, call) in insts.iter().filter(|i| i.opcode() == Opcode::LLVMCall).filter_map(|i| Some((i, i.as_call()?))) {
        let callee = call.called_operand();
        // (Nor does a call that never returns, which has no derivative and reads the
        // primal objects only: `throw_boundserror` handed an array rooted in the frame,
        // with bounds checks forced on.)
        // (Nor one that only a trap follows, which Julia's inference says never returns:
        // `mapreduce_empty`'s error, called through the generic calling convention.)
        let keeps_nothing = callee.is_function()
            && ["llvm.lifetime.", "llvm.memset."].iter().any(|p| callee.name().starts_with(p))
            || is_noreturn_call(call)
            || only_trap_follows(*i);
        if !keeps_nothing {
            for k in (0..call.call_arg_count()).filter(|&k| !rule_result_roots(*i, k)) {
                // (A value of a known type read by reference from a slot: those bytes.)
                if let Some((a, range)) = typed_read(m, *i, k) {
                    read.extend(range.step_by(8).map(|off| (a, Some(off))));
                    continue;
                }
                if let Some((a, range)) = copied_bytes(m, *i, k) {
                    read.extend(range.step_by(8).map(|off| (a, Some(off))));
                    continue;
                }
                read.extend(alloca_bases(i.operand(k)).into_iter().map(|a| (a, None)));
            }
        }
    }
    let mut accesses: HashMap<Value<'ctx>, Option<HashMap<Value<'ctx>, Access>>> = HashMap::new();
    // (An exception thrown in a `try` body resumes at the `catch`, an edge the paths
    // below do not see: a store there is never judged overwritten.)
    let setjmp = |i: &Value<'ctx>| {
        i.opcode() == Opcode::LLVMCall
            && i.as_call()
                .and_then(|c| callee_name(c.called_operand()))
                .is_some_and(|n| n.contains(crate::julia::current().setjmp))
    };
    let in_try: Option<(crate::analysis::cfg::Cfg, Vec<bool>)> = insts.iter().find(|i| setjmp(i)).map(|i| {
        let cfg = crate::analysis::cfg::Cfg::compute(i.parent_block().parent_function());
        let body = cfg.try_bodies();
        (cfg, body)
    });
    let in_try_body = |i: Value<'ctx>| in_try.as_ref().is_some_and(|(cfg, body)| body[cfg.index(i.parent_block())]);
    insts
        .iter()
        .filter(|i| i.opcode() == Opcode::LLVMStore && i.operand(0).ty().is_pointer())
        .filter(|i| match alloca_slot(m, i.operand(1)) {
            Some((a, off)) if !read.contains(&(a, Some(off))) && !read.contains(&(a, None)) => true,
            Some(_) if in_try_body(**i) => false,
            Some((a, off)) => {
                let of_a = accesses.entry(a).or_insert_with(|| slot_accesses(m, a));
                of_a.as_ref().is_some_and(|of_a| overwritten_before_read(m, **i, off, of_a))
            }
            None => false,
        })
        .copied()
        .collect()
}

/// The stack slot and byte range a `memcpy` or `memmove` of a constant length reads
/// when operand `k` is its source at a constant offset into a slot: a struct Julia
/// builds in GC frame slots and copies into the heap object it allocates (an
/// exception's fields, `DomainError(x)`), which reads those slots only.
fn copied_bytes<'ctx>(
    m: &'ctx crate::llvm::Module,
    i: Value<'ctx>,
    k: usize,
) -> Option<(Value<'ctx>, std::ops::Range<u64>)> {
    let callee = i.as_call()?.called_operand();
    let copy = callee.is_function() && ["llvm.memcpy.", "llvm.memmove."].iter().any(|p| callee.name().starts_with(p));
    if !copy || k != 1 {
        return None;
    }
    let length = i.operand(2).const_uint()?;
    let (a, offset) = alloca_slot(m, i.operand(1))?;
    // (Whole slots: a copy from the middle of one reads all of it.)
    let start = offset - offset % 8;
    Some((a, start..offset + length))
}

/// The stack slot and byte range operand `k` of call `i` reads, when `i` reads a value
/// of a type it is given by reference from a constant offset into a slot and nothing
/// else there: `jl_object_id_(T, p)`, which a broadcast's aliasing check takes of a
/// `Diagonal` Julia roots in a GC frame (the rest of the frame stays unread).
fn typed_read<'ctx>(
    m: &'ctx crate::llvm::Module,
    i: Value<'ctx>,
    k: usize,
) -> Option<(Value<'ctx>, std::ops::Range<u64>)> {
    let rt = crate::julia::current();
    let call = i.as_call()?;
    if k != 1 || call.call_arg_count() != 2 || callee_name(call.called_operand())? != rt.typed_object_id {
        return None;
    }
    let ty = crate::llvm::const_address(i.operand(0)).filter(|&a| a > rt.object_tag && a % 8 == 0)?;
    let type_tag = crate::symbols::address_of("jl_datatype_type")?;
    let (a, offset) = alloca_slot(m, i.operand(1))?;
    // SAFETY: `ty` is the address of an object Julia embedded in code it compiled (the
    // code roots it), its type tag in the word before it (low four bits GC bits); it is
    // read as a `DataType` only when that tag is `DataType`'s, whose size is a 32-bit
    // integer at the runtime's offset; the global read is set when Julia starts.
    let size = unsafe {
        let read = |a: u64| *(a as *const u64);
        if read(ty - rt.object_tag) & !15 != read(type_tag) {
            return None;
        }
        *((ty + rt.datatype_size) as *const i32)
    };
    (size > 0).then(|| (a, offset..offset + size as u64))
}

/// Whether operand `k` of call `i` is where a rule returning a struct through memory
/// (`names::rule_sret_result`: a factorization, `lu(M)`) gets the root slots of a GC
/// frame for the struct's objects: the parameter after the result buffer, a plain
/// pointer into the frame, which the runtime hook writes the primal's objects into and
/// never reads (`rule_sret_operand`). The frame's other slots are not read by the call.
pub fn rule_result_roots(i: Value, k: usize) -> bool {
    k == 1
        && crate::names::rule_sret_result(i).is_some()
        && i.as_call()
            .and_then(|c| c.called_function())
            .and_then(|f| f.params().get(1).copied())
            .is_some_and(|p| p.ty().address_space() == Some(0))
        && {
            let bases = alloca_bases(i.operand(k));
            !bases.is_empty() && bases.iter().all(|&a| is_gc_frame(a))
        }
}

/// What an instruction does to a stack slot's memory (`slot_accesses`): the byte ranges
/// are `[start, end)` from the alloca, `None` where the offset is not a constant.
#[derive(Clone, Copy, Debug)]
enum Access {
    Load(Option<(u64, u64)>),
    Store(Option<(u64, u64)>),
    /// A lifetime marker: what the slot held is gone.
    Lifetime,
    /// A call given an address into the alloca: it may read any of it.
    Call,
}

/// Every instruction that reads or writes alloca `a`, through address arithmetic and
/// merges of addresses; `None` when its address is kept anywhere but in a slot that is
/// only ever written (where it would let code the analysis does not see read it).
fn slot_accesses<'ctx>(m: &'ctx crate::llvm::Module, a: Value<'ctx>) -> Option<HashMap<Value<'ctx>, Access>> {
    let mut found = HashMap::new();
    let (mut seen, mut work) = (HashSet::new(), vec![a]);
    while let Some(p) = work.pop() {
        if !seen.insert(p) {
            continue;
        }
        for u in p.users() {
            let range = |ty: crate::llvm::Type<'ctx>| alloca_slot(m, p).map(|(_, o)| (o, o + m.size_of(ty)));
            let access = match u.opcode_if_instruction()? {
                Opcode::LLVMGetElementPtr | Opcode::LLVMBitCast | Opcode::LLVMAddrSpaceCast | Opcode::LLVMPHI => {
                    work.push(u);
                    continue;
                }
                Opcode::LLVMSelect if u.operand(0) != p => {
                    work.push(u);
                    continue;
                }
                Opcode::LLVMLoad => Access::Load(range(u.ty())),
                Opcode::LLVMStore if u.operand(1) == p && u.operand(0) != p => Access::Store(range(u.operand(0).ty())),
                Opcode::LLVMStore if u.operand(1) != p && is_written_only(u.operand(1)) => continue,
                // (A GC frame linked into the thread's frame list: the collector scans
                // its roots, the program never reads them through the link.)
                Opcode::LLVMStore
                    if u.operand(0) == p && p == a && is_gc_frame(a) && thread_state_slot(u.operand(1)) =>
                {
                    continue
                }
                Opcode::LLVMCall if u.as_call().is_some_and(is_lifetime_marker) => Access::Lifetime,
                Opcode::LLVMCall => Access::Call,
                _ => return None,
            };
            found.insert(u, access);
        }
    }
    Some(found)
}

/// Whether pointer store `s` into a stack slot at byte `off` is never read: on every
/// path from `s`, a store of at least as many bytes at the same offset (or the end of
/// the slot's lifetime) comes before anything that may read it (`accesses`: a load of
/// overlapping bytes or at an offset the analysis cannot tell, a call given the
/// alloca's address). Julia reuses one stack array for the arguments of several calls:
/// a splat's pointers there, on a path that goes on to an error message built in the
/// same array, are overwritten before that message reads them.
fn overwritten_before_read<'ctx>(
    m: &'ctx crate::llvm::Module,
    s: Value<'ctx>,
    off: u64,
    accesses: &HashMap<Value<'ctx>, Access>,
) -> bool {
    let end = off + m.size_of(s.operand(0).ty());
    let overlaps = |r: Option<(u64, u64)>| r.is_none_or(|(a, b)| a < end && off < b);
    // Whether the path ends at `i` (`Some(true)`: overwritten; `Some(false)`: read).
    let verdict = |i: Value<'ctx>| match accesses.get(&i) {
        None => None,
        Some(Access::Load(r)) => overlaps(*r).then_some(false),
        Some(Access::Store(Some((a, b)))) if *a == off && *b >= end => Some(true),
        Some(Access::Store(_)) => None,
        Some(Access::Lifetime) => Some(true),
        Some(Access::Call) => Some(false),
    };
    let scan = |from: Option<Value<'ctx>>, blocks: &mut Vec<crate::llvm::Block<'ctx>>| -> bool {
        let mut at = from;
        while let Some(i) = at {
            match verdict(i) {
                Some(true) => return true,
                Some(false) => return false,
                None => {}
            }
            if i.next_instruction().is_none() {
                blocks.extend(i.successors());
            }
            at = i.next_instruction();
        }
        true
    };
    let mut work = Vec::new();
    if !scan(s.next_instruction(), &mut work) {
        return false;
    }
    let mut visited = HashSet::new();
    while let Some(b) = work.pop() {
        if visited.insert(b) && !scan(b.instructions().first().copied(), &mut work) {
            return false;
        }
    }
    true
}

/// The alloca a pointer points into and the constant byte offset, through casts and
/// single-index GEPs with constant indices.
pub fn alloca_slot<'ctx>(m: &'ctx crate::llvm::Module, p: Value<'ctx>) -> Option<(Value<'ctx>, u64)> {
    if !p.is_instruction() {
        return None;
    }
    match p.opcode() {
        Opcode::LLVMAlloca => Some((p, 0)),
        Opcode::LLVMBitCast | Opcode::LLVMAddrSpaceCast => alloca_slot(m, p.operand(0)),
        Opcode::LLVMGetElementPtr if p.num_operands() == 2 => {
            let k = p.operand(1).const_uint()?;
            let (a, off) = alloca_slot(m, p.operand(0))?;
            Some((a, off + k * m.size_of(p.gep_source_type())))
        }
        _ => None,
    }
}

/// Whether function `g`, as analysed (before differentiation), writes only memory that
/// it allocated itself (arrays it creates, stack slots, the runtime's thread state), on
/// paths that return. Then memory it did not allocate, such as its arguments' arrays,
/// holds the same values all through the call, and the reverse sweep may load them
/// again instead of taping them. Calls: those `writes_only_stack` allows, array
/// creation, the GC allocator, and resizing arrays it created.
pub fn writes_only_fresh(g: Function) -> bool {
    let fresh = |p: Value| points_into_alloca(p) || allocated_here(p, 1, 12) || thread_state(p, 8);
    writes_only(g, &fresh, &|call| {
        let (i, callee) = (call.as_value(), call.called_operand());
        // (Julia reads the thread pointer with an argument-less inline `asm`.)
        if array_call(i).is_some() || callee.is_inline_asm() && call.call_arg_count() == 0 {
            return true;
        }
        if resize_call(i).is_some() {
            return fresh(i.operand(0));
        }
        if callee.is_function() && callee.intrinsic_id() != 0 {
            // memset, memcpy, memmove write their first operand.
            return !callee.name().starts_with("llvm.mem") || fresh(i.operand(0));
        }
        let name = callee_name(callee).unwrap_or_default();
        is_noreturn_call(call)
            || name.starts_with("ox.")
            || scalar_libm_call(call)
            || crate::julia::current().is_gc_alloc(&name)
            || callee.as_function().is_some_and(|callee| !callee.is_declaration() && writes_only_stack(callee))
    })
}

/// Whether every store of `g` on a path that returns (blocks ending in `unreachable`
/// throw) has an address `store_ok` accepts, every call is one `call_ok` accepts, and
/// nothing is atomic.
fn writes_only<'ctx>(
    g: Function<'ctx>,
    store_ok: &dyn Fn(Value<'ctx>) -> bool,
    call_ok: &dyn Fn(Call<'ctx>) -> bool,
) -> bool {
    g.blocks().into_iter().all(|bb| {
        if bb.terminator().map(|t| t.opcode()) == Some(Opcode::LLVMUnreachable) {
            return true;
        }
        bb.instructions().into_iter().all(|i| match i.opcode() {
            Opcode::LLVMStore => store_ok(i.operand(1)),
            Opcode::LLVMCall => i.as_call().is_some_and(call_ok),
            Opcode::LLVMAtomicRMW | Opcode::LLVMAtomicCmpXchg | Opcode::LLVMFence => false,
            _ => true,
        })
    })
}

/// Whether `p` points into memory allocated in this call: an array it created (its
/// object, or its data through the one load of the data pointer; a pointer loaded from
/// the data is an element, which may be any array) or an object from the GC allocator.
fn allocated_here(p: Value, loads: u32, depth: u32) -> bool {
    if depth == 0 || !p.is_instruction() {
        return false;
    }
    match p.opcode() {
        Opcode::LLVMCall => {
            array_call(p).is_some()
                || p.as_call()
                    .and_then(|c| callee_name(c.called_operand()))
                    .is_some_and(|n| crate::julia::current().is_gc_alloc(&n))
        }
        Opcode::LLVMGetElementPtr | Opcode::LLVMBitCast | Opcode::LLVMAddrSpaceCast => {
            allocated_here(p.operand(0), loads, depth - 1)
        }
        Opcode::LLVMLoad if loads > 0 => allocated_here(p.operand(0), loads - 1, depth - 1),
        _ => false,
    }
}

/// Whether `i` is the address of a root slot of one of `frames` (past the header, at a
/// constant offset; derived from the frame by casts and constant offsets).
fn root_slot_of(i: Value, frames: &HashSet<Value>) -> bool {
    let mut p = i;
    let mut offset = 0u64;
    for _ in 0..8 {
        match p.opcode_if_instruction() {
            Some(Opcode::LLVMAlloca) => {
                return frames.contains(&p) && offset >= crate::julia::current().gc_frame_header
            }
            Some(Opcode::LLVMBitCast | Opcode::LLVMAddrSpaceCast) => p = p.operand(0),
            // (Julia's frame addressing: `getelementptr i8, frame, k`.)
            Some(Opcode::LLVMGetElementPtr)
                if p.num_operands() == 2
                    && p.gep_source_type().is_int()
                    && p.gep_source_type().is_int()
                    && p.gep_source_type().int_width() == 8 =>
            {
                let Some(k) = p.operand(1).const_uint() else { return false };
                offset += k;
                p = p.operand(0);
            }
            _ => return false,
        }
    }
    false
}

/// Whether stack slot `a`'s address goes to a call that returns a struct through memory
/// (`sret`). Such a callee is handed root slots of a GC frame, where it stores the
/// struct's object references for the collector: the callee's output, with no shadow it
/// could mirror. And a struct it returns holding a differentiated array (a view that
/// `unaliascopy` copies) would need the callee to build the result's shadow, which it
/// does not yet: the stack object keeps no shadow, and what reads it is refused when
/// reached, as before stack objects had shadows.
/// (The result buffer itself, when the struct holds only floats — a complex number, a
/// dual number, a static vector — lends nothing: its shadow is the callee's shadow
/// output, `float_sret_buffer`. Nor does the buffer of a rule's result that holds
/// arrays, a factorization: the rule makes the shadow struct, `rule_sret_buffer`.)
fn lends_roots_to_sret_call(a: Value) -> bool {
    let sret_call = |p: Value, u: Value| {
        u.opcode_if_instruction() == Some(Opcode::LLVMCall)
            && u.as_call().and_then(|c| c.called_function()).is_some_and(|f| f.sret_type().is_some())
            && !(float_sret_call(u).is_some() && u.operand(0) == p && (1..u.num_operands()).all(|k| u.operand(k) != p))
            && !rule_sret_operand(p, u)
    };
    !every_use(a, |_| true, |p, u| !sret_call(p, u))
}

/// The struct type call `call` returns through memory (`sret`), when it holds only
/// floats of one type (a complex number, a dual number, a static vector): the caller's
/// buffer then holds numbers and nothing the collector must see.
pub fn float_sret_call<'ctx>(call: Value<'ctx>) -> Option<crate::llvm::Type<'ctx>> {
    let ty = call.as_call()?.called_function()?.sret_type()?;
    ty.float_aggregate().map(|_| ty)
}

/// The stack buffer the `sret` result of call `i` is written into, when it holds only
/// floats (`float_sret_call`) and is an `alloca` of the caller (at offset zero).
pub fn float_sret_buffer<'ctx>(i: Value<'ctx>) -> Option<Value<'ctx>> {
    float_sret_call(i)?;
    let out = i.operand(0);
    let a = object_base(out).filter(|a| a.opcode_if_instruction() == Some(Opcode::LLVMAlloca))?;
    at_offset_zero(out).then_some(a)
}

/// The float type of the numbers in stack buffer `a`, when `a` is the buffer of a call
/// returning a struct of floats of one type through memory (`float_sret_buffer`).
fn float_sret_element<'ctx>(a: Value<'ctx>) -> Option<crate::llvm::Type<'ctx>> {
    let call = a.users().into_iter().find(|&u| {
        u.opcode_if_instruction() == Some(Opcode::LLVMCall) && u.num_operands() > 0 && float_sret_buffer(u) == Some(a)
    })?;
    Some(float_sret_call(call)?.float_aggregate()?.0)
}

/// Whether `p` is one operand of a rule's call that returns a struct through memory
/// (`names::rule_sret_result`), once: the buffer, whose shadow the rule fills; the GC
/// frame slots that root the struct's objects, where the runtime hook writes the
/// primal's (it roots their shadows itself, so a shadow frame has nothing to mirror);
/// or an argument passed by reference (a view), which the hook reads with its shadow.
fn rule_sret_operand(p: Value, u: Value) -> bool {
    crate::names::rule_sret_result(u).is_some() && (0..u.num_operands()).filter(|&k| u.operand(k) == p).count() == 1
}

/// The stack buffer a rule writes its result into (`sret`, `names::rule_sret_result`),
/// when it is an `alloca` of the caller (at offset zero), with what the result holds.
pub fn rule_sret_buffer<'ctx>(i: Value<'ctx>) -> Option<(Value<'ctx>, crate::names::RuleSret)> {
    let what = crate::names::rule_sret_result(i)?;
    let out = i.operand(0);
    let a = object_base(out).filter(|a| a.opcode_if_instruction() == Some(Opcode::LLVMAlloca))?;
    at_offset_zero(out).then_some((a, what))
}

/// Whether stack slot `a` can have a shadow object: not one whose address goes to a
/// call returning a struct through memory (below).
pub fn shadowable_stack_object(a: Value) -> bool {
    !lends_roots_to_sret_call(a)
}

/// Whether stack slot `a` is a GC frame: Julia links it into the runtime's per-thread
/// state (its first slots hold the number of roots and the previous frame, the others
/// root objects for the collector).
pub fn is_gc_frame(a: Value) -> bool {
    a.users().into_iter().any(|u| u.opcode() == Opcode::LLVMStore && u.operand(0) == a && thread_state(u.operand(1), 8))
}

/// Whether zeroed copies can be made in this process (the runtime's array copy function
/// is at hand: in Julia, not in a test without it); `transform::shadow` relies on it.
pub fn zero_copies_available() -> bool {
    crate::symbols::address_of(crate::julia::current().array_function(ArrayCall::Copy)).is_some()
}

/// Whether a shadow the analysis is asked for (an `allocations` key) is a zeroed copy
/// of an array that exists before the call (`Memory::copies`), not a new object made
/// beside one the function allocates (an array, a GC object, a stack object).
fn is_zero_copy(a: Value) -> bool {
    match a.opcode_if_instruction() {
        None => true,
        Some(Opcode::LLVMAlloca) => false,
        // (An array a rule returns has the shadow the rule makes: `rules::calls::custom`;
        // a splat or dynamic call's, the one the runtime hook makes.)
        Some(_) => {
            array_call(a).is_none()
                && gc_allocation(a).is_none()
                && crate::names::rule_array_result(a).is_none()
                && !is_splat(a)
        }
    }
}

/// Whether `p` is an address in the runtime's per-thread state (where Julia links its GC
/// frames).
pub fn thread_state_slot(p: Value) -> bool {
    thread_state(p, 8)
}

/// Whether `p` points into the runtime's per-thread state (Julia's GC frame list hangs
/// off the thread pointer, read with inline assembly), through address arithmetic and
/// loads.
fn thread_state(p: Value, depth: u32) -> bool {
    if depth == 0 || !p.is_instruction() {
        return false;
    }
    match p.opcode() {
        Opcode::LLVMCall => {
            p.as_call().is_some_and(|c| !c.called_operand().is_function() && c.called_operand().is_inline_asm())
        }
        Opcode::LLVMGetElementPtr | Opcode::LLVMBitCast | Opcode::LLVMAddrSpaceCast | Opcode::LLVMLoad => {
            thread_state(p.operand(0), depth - 1)
        }
        _ => false,
    }
}

/// Whether function `g` writes no memory but its own stack slots, on paths that return
/// (blocks ending in `unreachable` throw). Calls are to intrinsics other than the memory
/// ones, to functions defined in the module (checked on their own), or to the engine's
/// markers (`ox.*`).
pub fn writes_only_stack(g: Function) -> bool {
    writes_only(g, &points_into_alloca, &|call| {
        let callee = call.called_operand();
        scalar_libm_call(call)
            || callee.as_function().is_some_and(|callee| {
                if callee.intrinsic_id() != 0 {
                    // memset, memcpy, memmove write their first operand (a GC frame's
                    // slots are zeroed this way).
                    !callee.name().starts_with("llvm.mem") || points_into_alloca(call.as_value().operand(0))
                } else {
                    !callee.is_declaration() || callee.name().starts_with("ox.")
                }
            })
    })
}

/// The arguments (by position) of call `call`, a callee differentiated call by call,
/// whose number its callee may keep (`keeps_param`). A derivative that comes only from
/// such an argument (the call's result unused, no shadowed memory handed to it) still
/// leaves the call: its derivative must run, so that what it writes is differentiated
/// or refused (`aset!(a, k, y)` storing `y` into a fresh array `a` once gave the caller a
/// zero derivative).
pub fn kept_float_args(call: Call) -> Vec<usize> {
    let Some(callee) = call.called_function().filter(|f| !f.is_declaration()) else { return Vec::new() };
    let i = call.as_value();
    (0..call.call_arg_count())
        .filter(|&k| i.operand(k).ty().is_floating())
        .filter(|&k| keeps_param(callee, k, &mut HashSet::new()))
        .collect()
}

/// Whether function `g` may keep its parameter `k` (a number) beyond the call, other than
/// by returning a value computed from it: store something computed from it into memory
/// (any memory: its own fresh arrays may be returned or stored in turn), or hand it to a
/// call that may (a function whose body is in the module, examined in turn; any other
/// call but elementary math and printing). Comparisons and conversions to integers carry
/// no derivative, and paths that end in an exception never return. A function already
/// being examined with that parameter adds nothing (recursion: what it keeps, another
/// instruction shows).
fn keeps_param<'ctx>(g: Function<'ctx>, k: usize, seen: &mut HashSet<(Function<'ctx>, usize)>) -> bool {
    let Some(&param) = g.params().get(k) else { return true };
    if !seen.insert((g, k)) {
        return false;
    }
    let mut work = vec![param];
    let mut reached: HashSet<Value<'ctx>> = HashSet::from([param]);
    while let Some(v) = work.pop() {
        for u in v.users() {
            if !u.is_instruction() || in_throwing_block(u) {
                continue;
            }
            let carries = match u.opcode() {
                Opcode::LLVMStore => {
                    if u.operand(0) == v {
                        return true;
                    }
                    false
                }
                Opcode::LLVMAtomicRMW | Opcode::LLVMAtomicCmpXchg => return true,
                Opcode::LLVMCall => {
                    let Some(call) = u.as_call() else { return true };
                    if crate::inactive::is_inactive_call(u) || is_noreturn_call(call) {
                        continue;
                    }
                    let callee = call.called_operand();
                    let intrinsic = callee.as_function().is_some_and(|f| f.intrinsic_id() != 0);
                    let memory = callee_name(callee).is_some_and(|n| n.starts_with("llvm.mem"));
                    if intrinsic && !memory || scalar_libm_call(call) {
                        true
                    } else {
                        let Some(f) = call.called_function().filter(|f| !f.is_declaration()) else { return true };
                        if (0..call.call_arg_count()).any(|j| u.operand(j) == v && keeps_param(f, j, seen)) {
                            return true;
                        }
                        true
                    }
                }
                Opcode::LLVMICmp
                | Opcode::LLVMFCmp
                | Opcode::LLVMFPToSI
                | Opcode::LLVMFPToUI
                | Opcode::LLVMLoad
                | Opcode::LLVMRet
                | Opcode::LLVMBr
                | Opcode::LLVMSwitch => false,
                // Anything else computes a value from it (arithmetic, casts, its bits,
                // merges, aggregates) or is an operation nobody lists here: followed.
                _ => true,
            };
            if carries && !u.ty().is_void() && reached.insert(u) {
                work.push(u);
            }
        }
    }
    false
}

/// Whether `call` calls a C math function with numbers only (`lgamma` through
/// `ccall`, say: `rules::math::is_scalar_libm`), which writes no memory the program
/// reads.
pub fn scalar_libm_call(call: Call) -> bool {
    let i = call.as_value();
    (0..call.call_arg_count()).all(|k| !i.operand(k).ty().is_pointer())
        && callee_name(call.called_operand()).is_some_and(|n| crate::rules::math::is_scalar_libm(&n))
}

/// Whether instruction `i` is a call of a function that may resize an array it is
/// handed (`may_resize`).
pub fn may_resize_call(m: &crate::llvm::Module, i: Value) -> bool {
    i.opcode() == Opcode::LLVMCall
        && i.as_call()
            .is_some_and(|c| !c.has_fn_attr("noreturn") && may_resize(m, c.called_operand(), &mut HashSet::new()))
}

/// Whether a call of `callee` may resize an array it is handed and return: a function
/// whose body, on a path that returns, calls one of the runtime's resizing functions on
/// an array it did not create (or hands such an array to a function that may resize
/// it, transitively). (Julia's error paths build messages in buffers they grow, then
/// throw: the reverse sweep never meets them, also where the growing and the throw are
/// blocks apart, as in a broadcast's `DimensionMismatch`.) An array loaded from a field of an object
/// the function allocates, which only ever holds arrays made during the call
/// (`holds_only_fresh_arrays`: a `Dict` the function builds), is one it created.
fn may_resize<'ctx>(m: &crate::llvm::Module, callee: Value<'ctx>, seen: &mut HashSet<Function<'ctx>>) -> bool {
    let Some(callee) = callee.as_function() else { return false };
    if callee.is_declaration()
        || callee.has_fn_attr("noreturn")
        || callee.has_string_attr(crate::names::RULE_KEEPS_SIZES)
        || !seen.insert(callee)
    {
        return false;
    }
    let created = |a: Value<'ctx>| {
        let base = zero_offset_base(a);
        base.is_instruction() && matches!(array_call(base), Some(ArrayCall::Alloc | ArrayCall::Copy))
            || holds_only_fresh_arrays(m, base)
    };
    // (Or an object it allocates holding such arrays of numbers only, handed on.)
    let created_or_holds = |a: Value<'ctx>| created(a) || holds_only_fresh_number_arrays(m, a);
    // (Blocks from which the call may return: not those that only go on to throw, as
    // an error message built in an `IOBuffer` does, but those in a `try`, whose `catch`
    // may return.)
    let cfg = crate::analysis::cfg::Cfg::compute(callee);
    let (returns, in_try) = (cfg.reaches_return(), cfg.try_bodies());
    let returning = |b: &crate::llvm::Block<'ctx>| {
        let k = cfg.index(*b);
        returns[k] || in_try[k]
    };
    callee.blocks().into_iter().filter(returning).flat_map(|b| b.instructions()).any(|i| {
        if resize_call(i).is_some() {
            return !created(i.operand(0));
        }
        i.opcode() == Opcode::LLVMCall
            && i.as_call().is_some_and(|call| {
                !call.has_fn_attr("noreturn")
                    && may_resize(m, call.called_operand(), seen)
                    && (0..call.call_arg_count())
                        .map(|k| i.operand(k))
                        .any(|a| a.ty().is_pointer() && !created_or_holds(a))
            })
    })
}

/// Whether `p` points into a stack slot (an alloca, at any offset).
pub fn points_into_alloca(p: Value) -> bool {
    alloca_base(p).is_some()
}

/// Whether pointer `v` leads to data that carries no derivative by declaration: a
/// parameter without a shadow (a `Const` argument), a global, or what is loaded from or
/// derived from those. (Runtime activity treats such memory as constant when a merge
/// chooses it; memory the engine merely lost track of is not such data.)
/// For `p`, a merge (at offset 0) of boxes of numbers the function makes — of
/// integers (`integer_box`) and of floats of one width (objects from the collector of 8
/// bytes, or of 4) —: the floats' width in bytes (8 if there are only integers).
fn number_boxes(p: Value) -> Option<u64> {
    let merge = zero_offset_base(p);
    if pointer_op(merge) != Some(PointerOp::Merge) || !at_offset_zero(p) {
        return None;
    }
    let mut width = None;
    for v in merged(merge) {
        if integer_box(v) {
            continue;
        }
        let size = own_bytes(v).filter(|s| *s == 4 || *s == 8)?;
        if *width.get_or_insert(size) != size {
            return None;
        }
    }
    Some(width.unwrap_or(8))
}

/// Whether `p` is a merge of boxes of numbers (`number_boxes`).
fn number_box_merge(p: Value) -> bool {
    number_boxes(p).is_some()
}

/// For `i`, a `memcpy` of a whole struct with a shadow that holds pointers only to the
/// start of a heap object the function allocates, of a size that holds it, which is
/// handed to a call Julia dispatches when it runs (Julia boxing a struct for it), or only
/// read where it is (`read_in_place`): that heap object, and the leaf its shadow gets. The struct is a stack object
/// (`Leaf::StackArraysF64`), or an immutable struct argument passed by reference whose
/// fields are pointers and integers (`Leaf::Object`: a generator handed to a
/// derivative taken when a call runs, `src/hooks.jl`); the copy of its shadow holds the
/// same shadows at the same offsets. (Not an exception object a struct is copied into,
/// which is thrown.)
pub fn pointer_struct_copy<'ctx>(mem: &Memory<'ctx>, i: Value<'ctx>) -> Option<(Value<'ctx>, Leaf)> {
    let call = i.as_call().filter(|_| i.opcode() == Opcode::LLVMCall)?;
    let name = callee_name(call.called_operand())?;
    if !name.starts_with("llvm.memcpy") {
        return None;
    }
    let (dst, src) = (i.operand(0), i.operand(1));
    let leaf = match mem.leaf(src)? {
        Leaf::StackArraysF64 => Leaf::StackArraysF64,
        Leaf::Object(fields)
            if at_offset_zero(src) && fields.iter().all(|(_, l)| !matches!(l, Layout::F64 | Layout::F32)) =>
        {
            Leaf::Object(fields)
        }
        _ => return None,
    };
    if !at_offset_zero(dst) {
        return None;
    }
    let object = zero_offset_base(dst);
    let len = i.operand(2).const_uint()?;
    let handed = object.users().into_iter().any(|u| is_splat(u) && u.operands().contains(&object));
    (gc_allocation(object).is_some()
        && own_bytes(object).is_some_and(|n| n >= len)
        && (handed || read_in_place(object, i)))
    .then_some((object, leaf))
}

/// Whether heap object `object`, filled by the copy `copy`, is only read where it is:
/// its fields loaded, its address rooted in a GC frame, its type tag written. A call
/// Julia dispatches when it runs, inlined (`jl_invoke` of `mapreduce_first` handed a
/// closure that holds a `Core.Box` beside an array), reads the fields of the struct
/// it was handed boxed; the loads then find the shadows the shadow copy holds.
fn read_in_place(object: Value, copy: Value) -> bool {
    every_use(
        object,
        |_| true,
        |p, u| match u.opcode_if_instruction() {
            Some(Opcode::LLVMLoad) => true,
            Some(Opcode::LLVMStore) if u.operand(0) == p => {
                alloca_base(u.operand(1)).is_some_and(is_gc_frame) && p == object
            }
            Some(Opcode::LLVMStore) => is_object_header(p),
            _ => u == copy,
        },
    )
}

/// Whether the function stores anything into object `a` it allocates (not counting its
/// type tag): an object nothing stores into is filled by the runtime or C code, if at
/// all, and never gets a shadow from activity.
fn stored_into(a: Value) -> bool {
    !walk_uses(
        a,
        true,
        |d| !is_object_header(d),
        |p, u| !(u.opcode_if_instruction() == Some(Opcode::LLVMStore) && u.operand(1) == p),
    )
}

/// Whether `v` is a box of an integer the runtime makes (`jl_box_int64`): memory that
/// never holds a float (beside a float's box at a merge: the field `hvcat` picks out of a
/// tuple of numbers of different types, `ingest::explicit_tuple_getfield`).
fn integer_box(v: Value) -> bool {
    v.as_call().and_then(|c| callee_name(c.called_operand())).and_then(|n| crate::julia::current().box_call(&n))
        == Some(crate::julia::Boxed::Integer)
}

fn constant_data(v: Value, shadowed: &HashMap<Value, Leaf>) -> bool {
    let mut p = v;
    for _ in 0..12 {
        if shadowed.contains_key(&p) {
            return false;
        }
        if p.is_argument() || p.is_constant() || integer_box(p) {
            return true;
        }
        match pointer_op(p) {
            Some(PointerOp::Derive | PointerOp::Load) => p = p.operand(0),
            _ => return false,
        }
    }
    false
}

/// Everything computed from `seeds`: pointers derived, loaded or merged from them,
/// aggregates holding them, and their addresses as integers (as `escaped_addresses`
/// follows them).
fn derived_from<'ctx>(insts: &[Value<'ctx>], seeds: &HashSet<Value<'ctx>>) -> HashSet<Value<'ctx>> {
    use Opcode::*;
    grow_to_fixpoint(insts, seeds.clone(), |i, set| {
        let from = |v: Value<'ctx>| set.contains(&v);
        match i.opcode() {
            LLVMGetElementPtr | LLVMExtractValue => from(i.operand(0)),
            // Pointers loaded, and an array's data pointer read as an integer (not the
            // number in a merge of numbers' boxes, `number_box_merge`).
            LLVMLoad => {
                from(i.operand(0))
                    && (i.ty().is_pointer()
                        || i.ty().is_int()
                            && i.ty().int_width() == 64
                            && at_offset_zero(i.operand(0))
                            && !number_box_merge(i.operand(0)))
            }
            LLVMPHI => i.as_phi().is_some_and(|phi| phi.incoming().iter().any(|(v, _)| from(*v))),
            LLVMSelect => from(i.operand(1)) || from(i.operand(2)),
            LLVMInsertValue => from(i.operand(0)) || from(i.operand(1)),
            LLVMPtrToInt | LLVMIntToPtr | LLVMBitCast | LLVMAddrSpaceCast | LLVMAdd | LLVMSub | LLVMTrunc
            | LLVMZExt | LLVMSExt => i.operands().iter().any(|&o| from(o)),
            _ => false,
        }
    })
}

/// Runtime activity covers loads and stores through a pointer that may point into
/// memory without a derivative (each tests, when it runs, whether its shadow is its
/// primal), and so do the functions differentiated call by call it is handed to.
/// Anything else such a pointer reaches would treat the primal as the shadow or hand it
/// on where that test is not made, and is refused: a call of a runtime or C function
/// (an array copy, a resize, a BLAS call, `memcpy`, a custom rule, a splat) that is not
/// an error path, a store of the pointer into memory other than a GC frame root slot
/// (a load of it from there would not be tested), and returning it (forward mode would
/// return the constant array as its own tangent).
fn refuse_runtime_activity_escapes(
    m: &crate::llvm::Module,
    insts: &[Value],
    maybe_constant: &HashSet<Value>,
    frames: &HashSet<Value>,
    user: &str,
) -> Result<()> {
    let refuse = |i: Value, what: &str| {
        Err(Error::Unsupported(format!(
            "a pointer that may point into a differentiated array or into memory without a derivative (a \
             `Const` argument), as chosen when the code runs, {what}, in `{user}`{}",
            crate::names::where_(i)
        )))
    };
    for &i in insts {
        match i.opcode() {
            // (A returned array's tangent would be the constant array itself.)
            Opcode::LLVMRet if i.num_operands() == 1 && maybe_constant.contains(&i.operand(0)) => {
                return refuse(i, "returned");
            }
            Opcode::LLVMStore if maybe_constant.contains(&i.operand(0)) => {
                let p = i.operand(1);
                let frame_slot = alloca_base(p).is_some_and(|a| is_gc_frame(a) && !frames.contains(&a));
                // A slot nothing reads back: the argument array of a call made before
                // (`unread_slot`), or a GC frame root slot no load reads.
                let unread = alloca_base(p).is_some_and(|a| unread_slot(a) || error_path_slot(a))
                    || alloca_slot(m, p).is_some_and(|(a, off)| is_gc_frame(a) && frame_slot_unread(m, a, off));
                if !(frame_slot || unread) {
                    return refuse(i, "stored into memory");
                }
            }
            Opcode::LLVMCall
                if i.as_call()
                    .is_some_and(|c| (0..c.call_arg_count()).any(|k| maybe_constant.contains(&i.operand(k)))) =>
            {
                let Some(call) = i.as_call() else { continue };
                let callee = call.called_operand();
                let name = callee_name(callee).unwrap_or_default();
                let intrinsic = callee.is_function() && callee.intrinsic_id() != 0 && !name.starts_with("llvm.mem");
                let inert = name == crate::julia::current().write_barrier || name.starts_with("julia.");
                let error_path = is_noreturn_call(call);
                // A function differentiated call by call tests the pointer too (its
                // pattern says so: `transform::calls::Pattern::maybe_constant`).
                let differentiated = callee.as_function().is_some_and(|f| f.has_string_attr(crate::names::RECURSIVE))
                    // (A call Julia dispatches when it runs takes an argument that is its
                    // own shadow as constant: src/hooks.jl, `dynamic_arguments`.)
                    || name.starts_with(crate::names::DYNAMIC_PREFIX);
                if !(intrinsic || inert || error_path || differentiated) {
                    return refuse(i, &format!("handed to `{}`", crate::names::julia_name(&name)));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Whether heap object `a` (a box) is read by nothing but calls without derivative
/// (`crate::inactive`: printing, logging): its address goes only into their argument
/// arrays and into GC frame slots nothing loads, and nothing loads from it. What is
/// stored into it is printed or logged, never read back, so it carries no derivative.
///
/// Julia reuses one stack array for the arguments of every call it makes in a function
/// (`@info "x" x` fills it for `invoke(shouldlog, ...)` and `apply_type` before handing
/// it to `handle_message`), and fills it just before each call. So an argument array
/// may be read by other calls too, as long as none of them can see the box: each reads
/// its slots from stores made in its own block, before it (`is_unobserved`).
pub fn printed_only(m: &crate::llvm::Module, a: Value) -> bool {
    printed_only_in(m, a, &mut HashSet::new())
}

/// Whether store `i` puts a pointer into a slot of a stack array of call arguments that
/// only calls without derivative (printing, logging) read there, as `printed_only`
/// tests each store of a box it follows: where the array has a shadow (it holds a
/// boxed number with a shadow box too, `string("s = ", s, ", x = ", x[1])` with `s` a
/// `Core.Box`'s untyped number), the slot's shadow is never read.
pub fn stored_for_inactive_calls_only(m: &crate::llvm::Module, i: Value) -> bool {
    let Some((s, offset)) = alloca_slot(m, i.operand(1)) else { return false };
    let mut examined = HashSet::new();
    !is_gc_frame(s)
        && is_argument_array(m, s, &mut examined)
        && is_unobserved(m, s, offset, strip_address(i.operand(0)), &mut examined)
}

/// Whether `p` points into a box allocated by the collector that only printing or
/// logging reads (`printed_only`).
pub fn into_printed_box(m: &crate::llvm::Module, p: Value) -> bool {
    object_base(p).is_some_and(|a| gc_allocation(a).is_some() && printed_only(m, a))
}

/// `printed_only`, where the objects and arrays in `examined` are being checked already,
/// further up the recursion (argument arrays are reused and tuples hold each other: a
/// cycle assumes what it is checking). Only those: a check that has ended, true or
/// false, leaves the set, so that its answer is never taken for granted elsewhere (a
/// tuple of a matrix literal's boxes handed to code that is not printing, found not
/// printed-only while its argument array was checked, was then taken for printed-only,
/// and the literal's derivative was lost when a `println` shared the array).
fn printed_only_in<'ctx>(m: &'ctx crate::llvm::Module, a: Value<'ctx>, examined: &mut HashSet<Value<'ctx>>) -> bool {
    if !examined.insert(a) {
        return true;
    }
    let printed = printed_only_uses(m, a, examined);
    examined.remove(&a);
    printed
}

fn printed_only_uses<'ctx>(m: &'ctx crate::llvm::Module, a: Value<'ctx>, examined: &mut HashSet<Value<'ctx>>) -> bool {
    every_use(
        a,
        |_| true,
        |p, u| match u.opcode_if_instruction() {
            Some(Opcode::LLVMStore) if u.operand(1) == p => true,
            Some(Opcode::LLVMStore) => match alloca_slot(m, u.operand(1)) {
                Some((s, offset)) if is_gc_frame(s) => !is_slot_loaded(m, s, offset),
                Some((s, offset)) => is_argument_array(m, s, examined) && is_unobserved(m, s, offset, a, examined),
                None => false,
            },
            Some(Opcode::LLVMCall) => {
                crate::inactive::is_inactive_call(u) || u.as_call().is_some_and(is_lifetime_marker)
            }
            _ => false,
        },
    )
}

/// Whether nothing reads the shadow of `p`, a slot of a GC frame with a shadow at a
/// constant offset: no load reads that slot, and the only calls given an address into
/// the frame are lifetime markers, `memset` and copies out of the frame into memory
/// without a shadow (whose derivative copies no shadow). Julia builds an immutable
/// struct there before copying it into a heap object (the `DomainError` a `throw`
/// inside a `try` makes): a pointer without a shadow stored into such a slot leaves the
/// shadow slot stale, and nothing sees it. (Nor does a call that never returns, handed
/// the address of a slot: `throw_boundserror` given an object rooted there, with
/// bounds checks forced on. It has no derivative, `Rule::ErrorPath`, and reads the
/// primal frame only.)
pub fn shadow_slot_unread(m: &crate::llvm::Module, mem: &Memory, p: Value) -> bool {
    let Some((s, offset)) = alloca_slot(m, p) else { return false };
    if !is_gc_frame(s) || is_slot_loaded(m, s, offset) {
        return false;
    }
    every_use(
        s,
        |_| true,
        |p, u| match u.opcode_if_instruction() {
            Some(Opcode::LLVMLoad | Opcode::LLVMStore) => true,
            Some(Opcode::LLVMCall) => u.as_call().is_some_and(|call| {
                let name = call.called_operand().name();
                let copy_from_frame = ["llvm.memcpy.", "llvm.memmove."].iter().any(|c| name.starts_with(c))
                    && u.operand(1) == p
                    && u.operand(0) != p;
                let copy_out = copy_from_frame && alloca_base(u.operand(0)).is_none() && !mem.is_shadowed(u.operand(0));
                // (Or a copy of other slots of the frame: a closure Julia keeps in two
                // of them, boxed for a call, `pointer_struct_copy`.)
                let copies_other_slots = copy_from_frame
                    && u.operand(2)
                        .const_uint()
                        .zip(alloca_slot(m, p))
                        .is_some_and(|(n, (_, at))| offset + 8 <= at || offset >= at + n);
                // (A struct Julia passes by reference from another slot: its callee reads
                // and writes that struct's bytes only.)
                let elsewhere = by_reference_bytes(u, p)
                    .zip(alloca_slot(m, p))
                    .is_some_and(|(n, (_, at))| offset + 8 <= at || offset >= at + n);
                copy_out
                    || copies_other_slots
                    || elsewhere
                    || is_lifetime_marker(call)
                    || name.starts_with("llvm.memset.")
                    || is_noreturn_call(call)
            }),
            _ => false,
        },
    )
}

/// The number of bytes from `p` that call `call` may read or write, when `p` is only
/// handed to it as an immutable struct Julia passes by reference: every argument that
/// is `p` is a `nocapture` parameter `dereferenceable(n)` of the function it calls
/// (Julia's calling convention for a struct of `n` bytes, whose callee reads its fields
/// and nothing around them, as its code generator emits them).
pub fn by_reference_bytes(call: Value, p: Value) -> Option<u64> {
    let c = call.as_call()?;
    let callee = c.called_operand().as_function()?;
    let mut bytes = None;
    for k in 0..c.call_arg_count() {
        if call.operand(k) != p {
            continue;
        }
        let k = u32::try_from(k).ok()?;
        if !callee.has_param_attr(k, "nocapture") {
            return None;
        }
        let n = callee.param_attr_value(k, "dereferenceable")?;
        bytes = Some(bytes.map_or(n, |b: u64| b.max(n)));
    }
    bytes
}

/// The values a copy of `len` bytes from `src`, an address at a constant offset into a
/// GC frame, may read: those stored into the frame at constant offsets in that range.
/// `None` when something else may write there (a store at an unknown offset, or a call
/// other than a lifetime marker, `memset` or a copy out of the frame given an address
/// into it).
pub fn frame_bytes_stored<'ctx>(
    m: &'ctx crate::llvm::Module,
    src: Value<'ctx>,
    len: Value<'ctx>,
) -> Option<Vec<Value<'ctx>>> {
    let (s, start) = alloca_slot(m, src)?;
    let end = start + len.const_uint()?;
    if !is_gc_frame(s) {
        return None;
    }
    let mut stored = Vec::new();
    let known = every_use(
        s,
        |_| true,
        |p, u| match u.opcode_if_instruction() {
            Some(Opcode::LLVMLoad) => true,
            Some(Opcode::LLVMStore) if u.operand(1) != p => true,
            Some(Opcode::LLVMStore) => match alloca_slot(m, p) {
                Some((_, at)) => {
                    let size = m.size_of(u.operand(0).ty());
                    if at < end && start < at + size {
                        stored.push(u.operand(0));
                    }
                    true
                }
                None => false,
            },
            Some(Opcode::LLVMCall) => u.as_call().is_some_and(|call| {
                let name = call.called_operand().name();
                let copy_out =
                    ["llvm.memcpy.", "llvm.memmove."].iter().any(|c| name.starts_with(c)) && u.operand(0) != p;
                copy_out || is_lifetime_marker(call) || name.starts_with("llvm.memset.")
            }),
            _ => false,
        },
    );
    known.then_some(stored)
}

/// Whether some load from stack slot `s` may read the slot at byte `offset` (Julia
/// keeps values live across a `try` in GC frame slots, and loads them in the `catch`).
fn is_slot_loaded(m: &crate::llvm::Module, s: Value, offset: u64) -> bool {
    !every_use(
        s,
        |_| true,
        |p, u| {
            u.opcode_if_instruction() != Some(Opcode::LLVMLoad) || alloca_slot(m, p).is_some_and(|(_, o)| o != offset)
        },
    )
}

/// Whether nothing reads root slot `offset` of GC frame `a` but the collector: every use
/// of the frame's addresses is a load of another slot, a store into it, the store of the
/// frame into the thread's state (which links it for the collector), or a lifetime
/// marker or `memset`, or a call that throws (its block ends in `unreachable`). (Stricter
/// than `!is_slot_loaded`: an address of the frame handed to a call that returns, or
/// stored elsewhere, may be read there.)
fn frame_slot_unread(m: &crate::llvm::Module, a: Value, offset: u64) -> bool {
    every_use(
        a,
        |_| true,
        |p, u| match u.opcode_if_instruction() {
            Some(Opcode::LLVMLoad) => alloca_slot(m, p).is_some_and(|(_, o)| o != offset),
            Some(Opcode::LLVMStore) => u.operand(0) != p || p == a && thread_state(u.operand(1), 8),
            Some(Opcode::LLVMCall) => u.as_call().is_some_and(|c| {
                let name = callee_name(c.called_operand()).unwrap_or_default();
                // (A copy out of other slots: a struct Julia keeps in the frame, boxed.)
                let copy_elsewhere = name.starts_with("llvm.memcpy.")
                    && u.operand(1) == p
                    && u.operand(0) != p
                    && alloca_slot(m, p)
                        .zip(u.operand(2).const_uint())
                        .is_some_and(|((_, o), len)| offset < o || offset >= o + len);
                is_lifetime_marker(c) || name.starts_with("llvm.memset.") || copy_elsewhere || in_throwing_block(u)
            }),
            _ => false,
        },
    )
}

/// The bytes of its argument array that call `i` reads, when `p`, a pointer into a stack
/// array, is that array in Julia's calling convention (`F, args, nargs`: dynamic dispatch
/// and the builtins): `[start, end)`.
fn argument_bytes(m: &crate::llvm::Module, i: Value, p: Value) -> Option<(u64, u64)> {
    let name = callee_name(i.called_operand_if_call()?)?;
    let julia_call = crate::julia::current().dynamic_calls.contains(&name.as_str()) || name.starts_with("jl_f_");
    if !julia_call || i.as_call()?.call_arg_count() < 3 || i.operand(1) != p {
        return None;
    }
    let n = i.operand(2).const_uint()?;
    let (_, start) = alloca_slot(m, p)?;
    Some((start, start + n * m.size_of(m.ptr())))
}

/// Whether nothing but printing or logging (or building a tuple that is printed only)
/// sees what box `a` stores at byte `offset` of argument array `s`. Each call that
/// reads the slot, and each load that may read it (Julia's own code inlined, such as
/// the `print_to_string` of an error message on a path that throws), either runs on no
/// path from a store of `a` there that does not store something else there first
/// (`Cfg::may_follow`), or on a path that only throws (no `return` ahead, outside any
/// `try`: the error message of a size check inlined into a loop, which walks the array
/// by a pointer of its own), or, for a call, finds there what a store in its own
/// block, before it, put there, and that store is not one of `a`.
fn is_unobserved<'ctx>(
    m: &'ctx crate::llvm::Module,
    s: Value<'ctx>,
    offset: u64,
    a: Value<'ctx>,
    examined: &mut HashSet<Value<'ctx>>,
) -> bool {
    let (mut readers, mut loads, mut stores_of_a) = (Vec::new(), Vec::new(), Vec::new());
    every_use_through_merges(s, |p, u| {
        match u.opcode_if_instruction() {
            Some(Opcode::LLVMLoad) if alloca_slot(m, p).is_none_or(|(_, o)| o == offset) => loads.push(u),
            Some(Opcode::LLVMStore) if u.operand(1) == p && strip_address(u.operand(0)) == a => stores_of_a.push(u),
            _ => {}
        }
        match argument_bytes(m, u, p) {
            Some((start, end)) if (start..end).contains(&offset) => readers.push(u),
            None if never_returns(u) => readers.push(u),
            _ => {}
        }
        true
    });
    // (A store of something else into the slot hides the box from what follows.)
    let overwrites = |i: Value<'ctx>| {
        i.opcode() == Opcode::LLVMStore
            && alloca_slot(m, i.operand(1)) == Some((s, offset))
            && strip_address(i.operand(0)) != a
    };
    // (What a reader finds where no path leads to a `return` nor into a `try` is part of
    // an error being raised: whatever it reads, the call ends by that throw.)
    let mut cfg = None;
    let mut after_a = |r: Value<'ctx>| {
        let (cfg, goes_on) = cfg.get_or_insert_with(|| {
            let cfg = crate::analysis::cfg::Cfg::compute(r.parent_block().parent_function());
            let (returns, caught) = (cfg.reaches_return(), cfg.try_bodies());
            let goes_on: Vec<bool> = returns.iter().zip(&caught).map(|(&r, &c)| r || c).collect();
            (cfg, goes_on)
        });
        goes_on[cfg.index(r.parent_block())] && stores_of_a.iter().any(|&st| cfg.may_follow(st, r, overwrites))
    };
    if loads.into_iter().any(&mut after_a) {
        return false;
    }
    readers.into_iter().all(|c| {
        let tuple = c.as_call().is_some_and(|call| is_tuple_of(call, c.operand(1)));
        if crate::inactive::is_inactive_call(c) || thrown_only(m, c) || tuple && printed_only_in(m, c, examined) {
            return true;
        }
        let block = c.parent_block().instructions();
        let before = &block[..block.iter().position(|&i| i == c).unwrap_or(0)];
        let last_store = before
            .iter()
            .rev()
            .find(|i| i.opcode() == Opcode::LLVMStore && alloca_slot(m, i.operand(1)) == Some((s, offset)));
        last_store.is_some_and(|st| st.operand(0).ty().is_pointer() && strip_address(st.operand(0)) != a) || !after_a(c)
    })
}

/// Whether `i` calls a function that never returns (`noreturn`: the runtime's errors).
fn never_returns(i: Value) -> bool {
    i.as_call().is_some_and(|c| {
        c.has_fn_attr("noreturn") || c.called_operand().as_function().is_some_and(|f| f.has_fn_attr("noreturn"))
    })
}

/// The base address `p` is computed from by casts and `getelementptr`s of one constant
/// offset each, and the sum of those offsets.
pub fn base_and_offset<'ctx>(m: &crate::llvm::Module, mut p: Value<'ctx>) -> Option<(Value<'ctx>, i64)> {
    let mut offset = 0i64;
    while p.is_instruction() {
        match p.opcode() {
            Opcode::LLVMBitCast | Opcode::LLVMAddrSpaceCast => {}
            Opcode::LLVMGetElementPtr => match m.gep_offsets(p, 1)?.0[..] {
                [c] => offset = offset.checked_add(c)?,
                _ => return None,
            },
            _ => break,
        }
        p = p.operand(0);
    }
    Some((p, offset))
}

/// Whether `a` is loaded from memory a parameter of its function points to that the
/// function never writes through (`readonly`, or only read, compared and handed to calls
/// that only read it), an immutable argument Julia passes by reference (a derived
/// pointer, not a mutable object that another argument may also be: a generator's
/// fields), so that `a` was there when the call began.
fn loaded_from_readonly_param(a: Value) -> bool {
    if a.opcode_if_instruction() != Some(Opcode::LLVMLoad) {
        return false;
    }
    let base = strip_address(a.operand(0));
    let Some(f) = base.is_argument().then(|| a.parent_block().parent_function()) else { return false };
    if base.ty().address_space() != Some(crate::julia::current().derived_address_space) {
        return false;
    }
    let index = f.params().into_iter().position(|q| q == base);
    let declared = index.and_then(|k| u32::try_from(k).ok()).is_some_and(|k| f.has_param_attr(k, "readonly"));
    declared
        || every_use(
            base,
            |_| true,
            |p, u| match u.opcode_if_instruction() {
                Some(Opcode::LLVMLoad | Opcode::LLVMICmp) => true,
                Some(Opcode::LLVMCall) => u.as_call().is_some_and(|c| is_lifetime_marker(c) || only_reads(c, p)),
                _ => false,
            },
        )
}

/// Whether array object `a` is loaded from a field of an object the function allocates
/// into which the function, and every function it hands the object to, stores only
/// arrays made there and then: an array made during the call, never one that existed
/// when it began (a `Dict`'s `vals`, which `rehash!` replaces by new arrays).
fn holds_only_fresh_arrays(m: &crate::llvm::Module, a: Value) -> bool {
    if a.opcode_if_instruction() != Some(Opcode::LLVMLoad) {
        return false;
    }
    let Some((o, field)) = base_and_offset(m, a.operand(0)) else { return false };
    gc_allocation(o).is_some() && field_gets_fresh_arrays(m, o, Some(field), false, &mut HashSet::new(), 4)
}

/// Whether `o` is an object the function allocates whose every pointer field only ever
/// holds arrays made during the call, of numbers or names (whose elements hold no
/// array): a `Dict` the function builds. Handed to a function that resizes what it
/// reaches from it, only arrays made during the call are resized.
fn holds_only_fresh_number_arrays(m: &crate::llvm::Module, o: Value) -> bool {
    let o = zero_offset_base(o);
    o.is_instruction()
        && gc_allocation(o).is_some()
        && field_gets_fresh_arrays(m, o, None, false, &mut HashSet::new(), 4)
}

/// Whether `a` and `b`, arrays or objects holding arrays that a resize may reach, are
/// surely apart: each is, or is loaded from a field of, an object the function
/// allocates, the two objects are made by different instructions (so never the same
/// object), and each object's pointer fields only ever hold arrays of numbers or names
/// made during the call, each stored into that object alone (`stored_once`): no array
/// is under both. Two `Dict`s, each handed to the `rehash!` that resizes its own arrays.
fn under_distinct_objects<'ctx>(m: &crate::llvm::Module, a: Value<'ctx>, b: Value<'ctx>) -> bool {
    let exclusive = |o: Value<'ctx>| field_gets_fresh_arrays(m, o, None, true, &mut HashSet::new(), 4);
    match (allocated_owner(m, a, 4), allocated_owner(m, b, 4)) {
        (Some(oa), Some(ob)) => oa != ob && exclusive(oa) && exclusive(ob),
        _ => false,
    }
}

/// The object the function allocates that `v` is, or is an array under: `v` is loaded
/// from one of its fields, or is an array made here and stored into one of its fields
/// alone (`stored_once`; the new `vals` of a `rehash!` inlined), or merges such arrays
/// of one object (`depth` merges deep).
fn allocated_owner<'ctx>(m: &crate::llvm::Module, v: Value<'ctx>, depth: u32) -> Option<Value<'ctx>> {
    let allocation = |o: Value<'ctx>| o.is_instruction() && gc_allocation(o).is_some();
    let v = zero_offset_base(v);
    if allocation(v) {
        return Some(v);
    }
    match v.opcode_if_instruction()? {
        Opcode::LLVMLoad => base_and_offset(m, v.operand(0)).map(|(o, _)| o).filter(|&o| allocation(o)),
        Opcode::LLVMCall if array_call(v).is_some() => {
            let rooted = |u: Value<'ctx>| alloca_base(u.operand(1)).is_some_and(is_gc_frame);
            let stores: Vec<Value<'ctx>> = v
                .users()
                .into_iter()
                .filter(|u| u.opcode() == Opcode::LLVMStore && u.operand(0) == v && !rooted(*u))
                .collect();
            let [store] = stores[..] else { return None };
            let (o, _) = base_and_offset(m, store.operand(1))?;
            (allocation(o) && stored_once(v, store)).then_some(o)
        }
        Opcode::LLVMPHI | Opcode::LLVMSelect if depth > 0 => {
            let owners: Vec<Option<Value<'ctx>>> =
                merged(v).into_iter().filter(|&w| w != v).map(|w| allocated_owner(m, w, depth - 1)).collect();
            let first = (*owners.first()?)?;
            owners.iter().all(|o| *o == Some(first)).then_some(first)
        }
        _ => None,
    }
}

/// Whether array `v`, just made by an allocation call, is stored as a value by `store`
/// alone (besides GC frame slots rooting it), and `store` cannot run twice for one run
/// of the allocation (every cycle through it passes the allocation): then the array is
/// held by the one object `store` writes into. Its other uses read or write its
/// contents, resize it, or throw.
fn stored_once(v: Value, store: Value) -> bool {
    if !v.is_instruction() || !store.is_instruction() {
        return false;
    }
    let f = v.parent_block().parent_function();
    if store.parent_block().parent_function() != f {
        return false;
    }
    let rt = crate::julia::current();
    // (Through merges too: the owner of an array of strings, a merge of the array and
    // what it shares its data with, which the write barrier of a store into it reads.)
    let only_here = every_use_through_merges(v, |p, u| match u.opcode_if_instruction() {
        Some(Opcode::LLVMLoad | Opcode::LLVMICmp) => true,
        Some(Opcode::LLVMStore) if u.operand(1) == p && u.operand(0) != p => true,
        Some(Opcode::LLVMStore) => u == store || alloca_base(u.operand(1)).is_some_and(is_gc_frame),
        Some(Opcode::LLVMCall) => u.as_call().is_some_and(|c| {
            is_lifetime_marker(c)
                || callee_name(c.called_operand()).is_some_and(|n| n == rt.write_barrier)
                || resize_call(u).is_some() && u.operand(0) == p && (1..c.call_arg_count()).all(|k| u.operand(k) != p)
                // (A bounds error, with bounds checks forced on: it throws. Another
                // object it could put the array in is no `Dict`: what `allocated_owner`
                // objects hold are arrays stored there as they are made.)
                || never_returns(u)
        }),
        _ => false,
    });
    if !only_here {
        return false;
    }
    // (A loop storing the same array again: the store runs after itself without the
    // allocation in between.)
    !crate::analysis::cfg::Cfg::compute(f).may_follow(store, store, |i| i == v)
}

/// `holds_only_fresh_arrays` of the field at byte `field` of object `o` (an allocation,
/// or a callee's parameter it was handed as), or of every field holding a pointer
/// (`None`: arrays of numbers or names only; with `exclusive`, each stored there alone,
/// `stored_once`), through calls `depth` deep (a recursive
/// callee is checked once: the parameters being checked are `checking`). The object may
/// be read, compared, returned, rooted in a GC frame slot, handed to the collector's
/// write barrier, and merged with other objects (what the merge meets is checked alike);
/// anything else it meets (stored elsewhere, handed to a function the module does not
/// define) is `false`.
fn field_gets_fresh_arrays<'ctx>(
    m: &crate::llvm::Module,
    o: Value<'ctx>,
    field: Option<i64>,
    exclusive: bool,
    checking: &mut HashSet<Value<'ctx>>,
    depth: u32,
) -> bool {
    if !checking.insert(o) {
        return true;
    }
    let rt = crate::julia::current();
    every_use(
        o,
        |_| true,
        |p, u| match u.opcode_if_instruction() {
            Some(Opcode::LLVMLoad | Opcode::LLVMICmp | Opcode::LLVMRet) => true,
            Some(Opcode::LLVMStore) if u.operand(1) == p && u.operand(0) != p => {
                let Some((base, at)) = base_and_offset(m, p) else { return false };
                let v = u.operand(0);
                let fresh = array_call(v).is_some();
                match field {
                    Some(field) => {
                        let size = i64::try_from(m.size_of(v.ty())).unwrap_or(i64::MAX);
                        let overlaps = at < field + 8 && field < at.saturating_add(size);
                        base == o && (!overlaps || at == field && fresh)
                    }
                    None => {
                        let numbers = || {
                            float_array_allocation_by_type(v).is_some()
                                || integer_array_allocation(v)
                                || name_array_allocation(v)
                        };
                        // (The type tag, in the header before the fields.)
                        let header = at < 0 && v.is_constant();
                        let alone = || !exclusive || stored_once(v, u);
                        base == o
                            && (header
                                || !v.ty().is_pointer() && !v.ty().is_aggregate()
                                || fresh && numbers() && alone())
                    }
                }
            }
            Some(Opcode::LLVMStore) => alloca_base(u.operand(1)).is_some_and(is_gc_frame) && u.operand(0) == p,
            // (A merge of the object with others, `rehash!`'s result: whatever it is, what
            // is stored through it is checked alike.)
            Some(Opcode::LLVMPHI) => p == o && field_gets_fresh_arrays(m, u, field, exclusive, checking, depth),
            Some(Opcode::LLVMSelect) => {
                p == o && u.operand(0) != p && field_gets_fresh_arrays(m, u, field, exclusive, checking, depth)
            }
            Some(Opcode::LLVMCall) => u.as_call().is_some_and(|c| {
                if is_lifetime_marker(c) || callee_name(c.called_operand()).is_some_and(|n| n == rt.write_barrier) {
                    return true;
                }
                let Some(h) = c.called_function().filter(|h| !h.is_declaration() && depth > 0) else { return false };
                // (Its result may be the object again, `rehash!(h)` returning `h`: its uses
                // are checked too.)
                let result =
                    !u.ty().is_pointer() || field_gets_fresh_arrays(m, u, field, exclusive, checking, depth - 1);
                result
                    && (0..c.call_arg_count()).filter(|&k| u.operand(k) == p).all(|k| {
                        base_and_offset(m, p) == Some((o, 0))
                            && h.params()
                                .get(k)
                                .is_some_and(|&q| field_gets_fresh_arrays(m, q, field, exclusive, checking, depth - 1))
                    })
            }),
            _ => false,
        },
    )
}

/// `p` without the address arithmetic and casts applied to it.
fn strip_address(mut p: Value) -> Value {
    while p.is_instruction()
        && matches!(p.opcode(), Opcode::LLVMGetElementPtr | Opcode::LLVMBitCast | Opcode::LLVMAddrSpaceCast)
    {
        p = p.operand(0);
    }
    p
}

/// Whether `accept(p, u)` holds for every user `u` of `a` and of the pointers derived
/// from it (`p` is the pointer `u` uses). Addresses derived by `getelementptr` and casts
/// are followed where `follow` says so, and never handed to `accept`.
fn every_use<'ctx>(
    a: Value<'ctx>,
    follow: impl Fn(Value<'ctx>) -> bool,
    accept: impl FnMut(Value<'ctx>, Value<'ctx>) -> bool,
) -> bool {
    walk_uses(a, false, follow, accept)
}

/// `every_use`, following merges of the derived pointers too (`phi`, `select`: inlined
/// code walking an argument array).
fn every_use_through_merges<'ctx>(a: Value<'ctx>, accept: impl FnMut(Value<'ctx>, Value<'ctx>) -> bool) -> bool {
    walk_uses(a, true, |_| true, accept)
}

/// `every_use` and `every_use_through_merges`: `merges` says whether a `phi` or a
/// `select` of the pointer derives one.
fn walk_uses<'ctx>(
    a: Value<'ctx>,
    merges: bool,
    follow: impl Fn(Value<'ctx>) -> bool,
    mut accept: impl FnMut(Value<'ctx>, Value<'ctx>) -> bool,
) -> bool {
    let mut work = vec![a];
    let mut seen = HashSet::new();
    while let Some(p) = work.pop() {
        if !seen.insert(p) {
            continue;
        }
        for u in p.users() {
            let derived = match u.opcode_if_instruction() {
                Some(Opcode::LLVMGetElementPtr | Opcode::LLVMBitCast | Opcode::LLVMAddrSpaceCast) => u.operand(0) == p,
                Some(Opcode::LLVMPHI) => merges,
                Some(Opcode::LLVMSelect) => merges && u.operand(0) != p,
                _ => false,
            };
            if derived {
                if follow(u) {
                    work.push(u);
                }
            } else if !accept(p, u) {
                return false;
            }
        }
    }
    true
}

/// Whether `p` is a stack slot that is only ever written.
fn is_written_only(p: Value) -> bool {
    let written = |u: Value| u.opcode_if_instruction() == Some(Opcode::LLVMStore) && u.operand(1) == p;
    p.opcode_if_instruction() == Some(Opcode::LLVMAlloca)
        && p.users().into_iter().all(|u| {
            written(u)
                || u.opcode_if_instruction() == Some(Opcode::LLVMCall) && u.as_call().is_some_and(is_lifetime_marker)
        })
}

/// Whether call `i` builds a tuple of the values in stack array `args`.
fn is_tuple_of(i: Call, args: Value) -> bool {
    i.call_arg_count() == 3
        && i.as_value().operand(1) == args
        && callee_name(i.called_operand()).is_some_and(|n| n == crate::julia::current().tuple_builtin)
}

/// Whether stack array `s` is only written, handed to calls without derivative (or to
/// the tuple builtin, building a tuple printed only), and read by other calls only as
/// their argument array; see `printed_only_in`.
fn is_argument_array<'ctx>(m: &'ctx crate::llvm::Module, s: Value<'ctx>, examined: &mut HashSet<Value<'ctx>>) -> bool {
    // (As in `printed_only_in`: `examined` holds the checks under way.)
    if !examined.insert(s) {
        return true;
    }
    let is = argument_array_uses(m, s, examined);
    examined.remove(&s);
    is
}

fn argument_array_uses<'ctx>(
    m: &'ctx crate::llvm::Module,
    s: Value<'ctx>,
    examined: &mut HashSet<Value<'ctx>>,
) -> bool {
    let mut handed = false;
    let only_written_and_handed = every_use_through_merges(s, |p, u| match u.opcode_if_instruction() {
        // (Julia keeps the address of a builtin's argument array in a stack slot
        // that nothing reads.)
        Some(Opcode::LLVMStore) => u.operand(1) == p || is_written_only(u.operand(1)),
        // An inactive call, or a tuple built from the array that is itself printed
        // only (the arguments of a splatted `println(xs...)`).
        Some(Opcode::LLVMCall)
            if crate::inactive::is_inactive_call(u)
                || thrown_only(m, u)
                || u.as_call().is_some_and(|call| is_tuple_of(call, p)) && printed_only_in(m, u, examined) =>
        {
            handed = true;
            true
        }
        // (A call that never returns: the error of inlined code indexing the array,
        // `jl_bounds_error_tuple_int`. It and loads, Julia's own code inlined, are
        // readers `is_unobserved` checks.)
        Some(Opcode::LLVMCall) => {
            u.as_call().is_some_and(is_lifetime_marker) || argument_bytes(m, u, p).is_some() || never_returns(u)
        }
        Some(Opcode::LLVMLoad) => true,
        _ => false,
    });
    only_written_and_handed && handed
}

/// Whether what call `c` returns is only thrown: `throw(DomainError(x))`, where Julia
/// builds the exception by a dynamic call of its constructor handed the boxed `x`, or
/// allocates it and copies its fields in (the constructor inlined). The object is
/// written, rooted in GC frame slots nothing reads and handed to the runtime's
/// `throw`, so what it was built from reaches no result but through a `catch e` that
/// reads the exception, which is refused where it reads a value from it
/// (`untracked`, "a caught exception"). (A constructor is trusted to keep its arguments
/// nowhere else.)
pub fn thrown_only(m: &crate::llvm::Module, c: Value) -> bool {
    let julia = crate::julia::current();
    let name = |i: Value| i.as_call().and_then(|call| callee_name(call.called_operand()));
    let allocated = gc_allocation(c).is_some();
    let dynamic = name(c).is_some_and(|n| julia.dynamic_calls.contains(&n.as_str()));
    if c.opcode_if_instruction() != Some(Opcode::LLVMCall) || !(allocated || dynamic) {
        return false;
    }
    let mut thrown = false;
    let only = every_use(
        c,
        |_| true,
        |p, u| match u.opcode_if_instruction() {
            Some(Opcode::LLVMStore) if u.operand(1) == p => allocated,
            Some(Opcode::LLVMStore) => {
                alloca_slot(m, u.operand(1)).is_some_and(|(s, off)| is_gc_frame(s) && !is_slot_loaded(m, s, off))
            }
            Some(Opcode::LLVMCall) if name(u).is_some_and(|n| n == julia.throw) => {
                thrown = true;
                true
            }
            Some(Opcode::LLVMCall) => {
                let filled = name(u).is_some_and(|n| n.starts_with("llvm.memcpy.") || n.starts_with("llvm.memset."));
                allocated && filled && u.operand(0) == p && u.operand(1) != p
            }
            _ => false,
        },
    );
    only && thrown
}

/// Whether call `i` is `llvm.lifetime.start`/`end`.
pub fn is_lifetime_marker(i: Call) -> bool {
    callee_name(i.called_operand()).is_some_and(|n| n.starts_with("llvm.lifetime"))
}

/// The garbage-collected allocation call `i` is, if it is one (`julia::GcAlloc`).
pub fn gc_allocation(i: Value) -> Option<&'static crate::julia::GcAlloc> {
    if i.opcode_if_instruction() != Some(Opcode::LLVMCall) {
        return None;
    }
    crate::julia::current().gc_alloc(&callee_name(i.as_call()?.called_operand())?)
}

/// The object a pointer is derived from, at any offset: a stack slot (`alloca`) or an
/// object from the garbage-collected allocator (a mutable struct, a box).
pub fn object_base(p: Value) -> Option<Value> {
    if !p.is_instruction() {
        return None;
    }
    match p.opcode() {
        Opcode::LLVMAlloca => Some(p),
        Opcode::LLVMCall => gc_allocation(p).map(|_| p),
        Opcode::LLVMGetElementPtr | Opcode::LLVMBitCast | Opcode::LLVMAddrSpaceCast => object_base(p.operand(0)),
        _ => None,
    }
}

/// The object (`object_base`: a stack slot or a heap object the function allocates) a
/// pointer points into and the constant byte offset, through casts and single-index
/// GEPs with constant indices.
pub fn object_slot<'ctx>(m: &crate::llvm::Module, p: Value<'ctx>) -> Option<(Value<'ctx>, i64)> {
    constant_field(m, p).filter(|(base, _)| is_object(*base))
}

/// Whether `v` is a stack slot or a heap object the function allocates, at its own
/// address.
fn is_object(v: Value) -> bool {
    v.opcode_if_instruction() == Some(Opcode::LLVMAlloca) || gc_allocation(v).is_some()
}

/// `object_slot` through merges of heap objects the function allocates (a struct
/// replaced in a loop: a phi of the first and the new one, each at its own address):
/// the objects the pointer may point into and the byte offset, the same in each.
pub fn object_slots<'ctx>(m: &crate::llvm::Module, p: Value<'ctx>) -> Option<(Vec<Value<'ctx>>, i64)> {
    let (base, off) = constant_field(m, p)?;
    if is_object(base) {
        return Some((vec![base], off));
    }
    match base.opcode_if_instruction()? {
        Opcode::LLVMPHI | Opcode::LLVMSelect => merged_heap_objects(m, base)
            .map(|objects| (objects, off))
            .or_else(|| merged_fields(m, base).map(|(objects, at)| (objects, at + off))),
        _ => None,
    }
}

/// For a merge of addresses of one field of heap objects the function allocates (GVN
/// merges `c.v`'s address where a branch chose `c`, through merges of merges): the
/// objects and the field's offset, the same in each. `None` for any other merge.
fn merged_fields<'ctx>(m: &crate::llvm::Module, p: Value<'ctx>) -> Option<(Vec<Value<'ctx>>, i64)> {
    let (mut objects, mut offset, mut seen, mut work) = (Vec::new(), None, HashSet::new(), vec![p]);
    while let Some(v) = work.pop() {
        if !seen.insert(v) {
            continue;
        }
        if matches!(v.opcode_if_instruction(), Some(Opcode::LLVMPHI | Opcode::LLVMSelect)) {
            work.extend(merged(v));
            continue;
        }
        let (o, off) = object_slot(m, v).filter(|(o, _)| gc_allocation(*o).is_some())?;
        if *offset.get_or_insert(off) != off {
            return None;
        }
        if !objects.contains(&o) {
            objects.push(o);
        }
    }
    Some((objects, offset?))
}

/// The heap objects the function allocates that merge `p` may be (each at its own
/// address), through merges of merges, `nothing` (the end of a linked list, which holds
/// nothing to differentiate; or null) and links: a pointer loaded from a field of such objects,
/// which is what was stored into that field of them (a loop walking a list the function
/// built, `l = l.next`, merges the nodes with what their `next` fields hold). `None` if
/// it may be anything else.
fn merged_heap_objects<'ctx>(m: &crate::llvm::Module, p: Value<'ctx>) -> Option<Vec<Value<'ctx>>> {
    let (mut found, mut seen, mut work, mut links) = (Vec::new(), HashSet::new(), vec![p], Vec::new());
    loop {
        while let Some(v) = work.pop() {
            // (Or a null pointer: a field never set, which the primal never reads
            // through either.)
            if !seen.insert(v) || is_nothing(v) || is_null(v) {
                continue;
            }
            if !v.is_instruction() {
                return None;
            }
            match v.opcode() {
                Opcode::LLVMPHI | Opcode::LLVMSelect if v.ty().is_pointer() => work.extend(merged(v)),
                // (A struct a dynamic call returns, whose edge into the merge is refused
                // when taken: `returns_struct_object`.)
                Opcode::LLVMCall if returns_struct_object(v) => {}
                _ if at_offset_zero(v) && gc_allocation(zero_offset_base(v)).is_some() => {
                    let o = zero_offset_base(v);
                    if !found.contains(&o) {
                        found.push(o);
                    }
                }
                Opcode::LLVMLoad if v.ty().is_pointer() => links.push(constant_field(m, v.operand(0))?),
                _ => return None,
            }
        }
        if links.is_empty() {
            return Some(found);
        }
        // Each link reads a field of the merge itself (a field of another object is not
        // followed here), at a constant offset: what the function stores there, into
        // these objects or through a merge of them, is what it may read.
        if !links.iter().all(|(base, _)| seen.contains(base)) {
            return None;
        }
        let f = p.parent_block().parent_function();
        let before = seen.len();
        for s in f.blocks().into_iter().flat_map(|b| b.instructions()) {
            if s.opcode() != Opcode::LLVMStore || !s.operand(0).ty().is_pointer() {
                continue;
            }
            let Some((base, off)) = constant_field(m, s.operand(1)) else { continue };
            // (Or through another merge that may be one of these objects.)
            let into = found.contains(&base) || seen.contains(&base) || may_merge_into(base, &found);
            if into && links.iter().any(|&(_, at)| at == off) && !seen.contains(&s.operand(0)) {
                work.push(s.operand(0));
            }
        }
        if work.is_empty() && seen.len() == before {
            return Some(found);
        }
    }
}

/// Whether merge `p` (through merges of merges) may be one of `objects`.
fn may_merge_into(p: Value, objects: &[Value]) -> bool {
    let (mut seen, mut work) = (HashSet::new(), vec![p]);
    while let Some(v) = work.pop() {
        if !seen.insert(v) {
            continue;
        }
        match v.opcode_if_instruction() {
            Some(Opcode::LLVMPHI | Opcode::LLVMSelect) => work.extend(merged(v)),
            _ if objects.contains(&zero_offset_base(v)) => return true,
            _ => {}
        }
    }
    false
}

/// The pointer address `p` is a constant byte offset from (through casts and
/// single-index GEPs with a constant index), and that offset.
pub(crate) fn constant_field<'ctx>(m: &crate::llvm::Module, p: Value<'ctx>) -> Option<(Value<'ctx>, i64)> {
    if !p.is_instruction() {
        return Some((p, 0));
    }
    match p.opcode() {
        Opcode::LLVMBitCast | Opcode::LLVMAddrSpaceCast => constant_field(m, p.operand(0)),
        Opcode::LLVMGetElementPtr if p.num_operands() == 2 => {
            let k = p.operand(1).const_int()?;
            let (base, off) = constant_field(m, p.operand(0))?;
            Some((base, off + k * m.size_of(p.gep_source_type()) as i64))
        }
        Opcode::LLVMGetElementPtr => None,
        _ => Some((p, 0)),
    }
}

/// For a load `i` from a tuple of numbers the function allocates, whose type tag says
/// what each field holds (`hvcat`'s of `[x 0; 0 y]`, `tuple_number_fields`): whether it
/// reads an integer field whole. `None` for a load from any other object.
pub fn typed_integer_field(m: &crate::llvm::Module, i: Value) -> Option<bool> {
    let (base, offset) = object_slot(m, i.operand(0))?;
    let fields = constant_type_tag(base).and_then(tuple_number_fields)?;
    let width = if i.ty().is_int() { i.ty().int_width() } else { 0 };
    Some(fields.iter().any(|f| match *f {
        NumberField::I64(at) => at as i64 == offset && width == 64,
        NumberField::I32(at) => at as i64 == offset && width == 32,
        _ => false,
    }))
}

/// Whether integer load `i` reads a field of a local object (a stack slot or a heap
/// object the function allocates) that only ever holds integers that `is_number` says
/// are no float's bits: every store into the object is at a constant offset, and those
/// at the load's offset store such integers of the load's width; the object's address
/// goes nowhere but into loads, stores and `inert` stores (GC frame slots nobody reads);
/// or, in a tuple of numbers, what its type says (`typed_integer_field`).
pub fn integer_field<'ctx>(
    m: &'ctx crate::llvm::Module,
    i: Value<'ctx>,
    inert: &HashSet<Value<'ctx>>,
    is_number: &dyn Fn(Value<'ctx>) -> bool,
) -> bool {
    if let Some(integer) = typed_integer_field(m, i) {
        return integer;
    }
    let Some((base, offset)) = object_slot(m, i.operand(0)) else { return false };
    every_use(
        base,
        |_| true,
        |p, u| match u.opcode_if_instruction() {
            Some(Opcode::LLVMLoad | Opcode::LLVMICmp) => true,
            Some(Opcode::LLVMStore) if u.operand(1) == p => match object_slot(m, p) {
                Some((_, at)) if at == offset => u.operand(0).ty() == i.ty() && is_number(u.operand(0)),
                Some(_) => true,
                None => false,
            },
            Some(Opcode::LLVMStore) => inert.contains(&u),
            // (An error path's call, `throw_boundserror(r, i)` given the range by
            // reference, throws: nothing after it reads the field. A call that only
            // reads the object, such as a copy out of it or a reduction over a
            // `LinRange` given by reference, or zeroes part of it, stores no float's
            // bits into the field.)
            Some(Opcode::LLVMCall) => u.as_call().is_some_and(|call| {
                is_lifetime_marker(call)
                    || is_noreturn_call(call)
                    || only_reads(call, p)
                    || {
                        // (A copy or a clear of bytes beside the field: the two parts of a float
                        // range's `ref` and `step` copied into their places before its length.)
                        let bytes = i64::from(i.ty().int_width() / 8);
                        writes_bytes(u)
                            && u.operand(0) == p
                            && object_slot(m, p)
                                .zip(u.operand(2).const_uint())
                                .is_some_and(|((_, at), len)| at + len as i64 <= offset || at >= offset + bytes)
                    }
                    || {
                        // (A rule's result, numbers beside integers, written as its type lays it
                        // out: a float range's length and offset are integers.)
                        p == base
                            && u.operand(0) == p
                            && offset >= 0
                            && crate::names::rule_sret_result(u) == Some(crate::names::RuleSret::Floats)
                            && call
                                .called_function()
                                .and_then(|f| f.sret_type())
                                .and_then(|t| m.leaf_at(t, offset as u64))
                                .is_some_and(|t| t == i.ty())
                    }
            }),
            _ => false,
        },
    )
}

/// Whether call `i`, of a function with a body (differentiated call by call), writes
/// nothing through the pointers it is handed, nor through any pointer loaded from the
/// memory they lead to (an array's data), and keeps none of them: every use of them in
/// the callee, and in the functions it hands them to in turn, only derives addresses,
/// loads, compares, or hands them to one of the runtime's functions that never return
/// (an error, which reads them to format its message). A throw inside such a call leaves nothing half
/// written (`pipeline::refuse_active_try_effects`: `sum(abs2, x)` inside a `try`, whose
/// pairwise `mapreduce_impl` reads `x`). `body` gives the function whose body to read
/// for a callee: a callee whose body already moved into its derivative function is read
/// in the copy kept for its primal calls (`transform::calls::Callees::primal_body`).
pub fn call_only_reads<'ctx>(i: Value<'ctx>, body: &dyn Fn(Function<'ctx>) -> Function<'ctx>) -> bool {
    let Some(c) = i.as_call().filter(|_| i.opcode() == Opcode::LLVMCall) else { return false };
    let Some(f) = c.called_function().map(body).filter(|f| !f.is_declaration()) else { return false };
    let mut seen = HashSet::new();
    (0..c.call_arg_count()).filter(|&k| i.operand(k).ty().is_pointer()).all(|k| param_only_read(f, k, body, &mut seen))
}

/// `call_only_reads` for parameter `k` of function `f` (`seen`: the parameters already
/// followed, a recursion's).
fn param_only_read<'ctx>(
    f: Function<'ctx>,
    k: usize,
    body: &dyn Fn(Function<'ctx>) -> Function<'ctx>,
    seen: &mut HashSet<(Value<'ctx>, usize)>,
) -> bool {
    const LIMIT: usize = 64;
    if !seen.insert((f.as_value(), k)) {
        return true;
    }
    if seen.len() > LIMIT {
        return false;
    }
    let Some(param) = f.params().get(k).copied() else { return false };
    let mut pointers = vec![param];
    let mut visited = HashSet::new();
    while let Some(a) = pointers.pop() {
        if !visited.insert(a) {
            continue;
        }
        if visited.len() > 4 * LIMIT {
            return false;
        }
        let ok = walk_uses(
            a,
            true,
            |_| true,
            |p, u| match u.opcode_if_instruction() {
                Some(Opcode::LLVMLoad) => {
                    if u.ty().is_pointer() {
                        pointers.push(u);
                    }
                    true
                }
                Some(Opcode::LLVMICmp) => true,
                // (A function with a body is followed, even one that always throws: it
                // may write before it does. The runtime's error functions only read.)
                Some(Opcode::LLVMCall) => u.as_call().is_some_and(|call| match call.called_function().map(body) {
                    Some(g) if !g.is_declaration() => {
                        call.called_operand() != p
                            && (0..call.call_arg_count())
                                .filter(|&j| u.operand(j) == p)
                                .all(|j| param_only_read(g, j, body, seen))
                    }
                    _ => is_lifetime_marker(call) || is_noreturn_call(call) || only_reads(call, p),
                }),
                _ => false,
            },
        );
        if !ok {
            return false;
        }
    }
    true
}

/// Whether call `c` stores no float's bits through its operand `p` and keeps no copy
/// of it: `p` is the source of a `memcpy`/`memmove` (and not its destination), the
/// destination of a `memset` (a byte pattern: an integer, carrying no derivative), or
/// every argument `p` is passed as is `readonly` and `nocapture` (at the call or on the
/// callee).
fn only_reads(c: Call, p: Value) -> bool {
    if let Some(name) = c.called_function().map(|f| f.name()) {
        if ["llvm.memcpy.", "llvm.memmove."].iter().any(|m| name.starts_with(m)) {
            return c.as_value().operand(0) != p;
        }
        if name.starts_with("llvm.memset.") {
            return c.as_value().operand(1) != p && c.as_value().operand(2) != p;
        }
    }
    let args: Vec<usize> = (0..c.call_arg_count()).filter(|&k| c.as_value().operand(k) == p).collect();
    let has = |k: usize, attr: &str| {
        c.has_arg_attr(k, attr)
            || c.called_function().is_some_and(|f| u32::try_from(k).is_ok_and(|k| f.has_param_attr(k, attr)))
    };
    !args.is_empty() && args.iter().all(|&k| has(k, "readonly") && has(k, "nocapture"))
}

/// Whether call `i` never returns (an error path: it throws).
pub fn is_noreturn_call(i: Call) -> bool {
    let callee = i.called_operand();
    i.has_fn_attr("noreturn") || callee.as_function().is_some_and(|f| f.has_fn_attr("noreturn"))
}

/// Whether object `a` (`object_base`) can have a shadow object: not one whose address
/// goes to a call returning a struct through memory (`lends_roots_to_sret_call`).
pub fn shadowable_object(a: Value) -> bool {
    !lends_roots_to_sret_call(a)
}

/// Whether `i` addresses the header of a garbage-collected object (its type tag, at a
/// negative constant offset): not a field, and never shadowed.
pub fn is_object_header(i: Value) -> bool {
    i.opcode_if_instruction() == Some(Opcode::LLVMGetElementPtr)
        && i.num_operands() == 2
        && i.operand(1).const_int().is_some_and(|k| k < 0)
        && object_base(i.operand(0)).is_some_and(|a| gc_allocation(a).is_some())
}

/// Every alloca pointer `p` may point into: through address arithmetic, casts and
/// merges.
pub fn alloca_bases(p: Value) -> Vec<Value> {
    let mut found = Vec::new();
    let (mut seen, mut work) = (HashSet::new(), vec![p]);
    while let Some(v) = work.pop() {
        if !v.is_instruction() || !v.ty().is_pointer() || !seen.insert(v) {
            continue;
        }
        match v.opcode() {
            Opcode::LLVMAlloca => found.push(v),
            Opcode::LLVMGetElementPtr | Opcode::LLVMBitCast | Opcode::LLVMAddrSpaceCast => work.push(v.operand(0)),
            Opcode::LLVMPHI | Opcode::LLVMSelect => work.extend(merged(v)),
            _ => {}
        }
    }
    found
}

/// Whether `i` is a call of LLVM's `memcpy` or `memmove` intrinsic.
pub fn is_byte_copy(i: Value) -> bool {
    let name = i.as_call().and_then(|c| c.called_function()).map(|f| f.name()).unwrap_or_default();
    name.starts_with("llvm.memcpy") || name.starts_with("llvm.memmove")
}

/// Whether `i` writes bytes through its first operand as LLVM's `memcpy`, `memmove`
/// or `memset` intrinsic.
pub fn writes_bytes(i: Value) -> bool {
    is_byte_copy(i)
        || i.as_call().and_then(|c| c.called_function()).is_some_and(|f| f.name().starts_with("llvm.memset"))
}

/// Whether `p` points into a stack slot that holds numbers alone: `Float64`s, with
/// integers beside them or not (`Type::numbers_aggregate`: a two-part number a rule
/// returned, the float range built from two of them). A copy between two such slots
/// moves numbers, whose shadows are copied alike; no pointer is among them.
pub fn number_slot(p: Value) -> bool {
    alloca_base(p).is_some_and(|a| a.allocated_type().numbers_aggregate().is_some_and(|f| f.float_bits() == 64))
}

/// The alloca a pointer is derived from, at any offset.
pub fn alloca_base(p: Value) -> Option<Value> {
    if !p.is_instruction() {
        return None;
    }
    match p.opcode() {
        Opcode::LLVMAlloca => Some(p),
        Opcode::LLVMGetElementPtr | Opcode::LLVMBitCast | Opcode::LLVMAddrSpaceCast => alloca_base(p.operand(0)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::{holds_only_fresh_arrays, loaded_from_readonly_param, Memory};
    use crate::llvm::{Context, Opcode, OwnedModule, Value};
    use crate::request::Leaf;
    use std::collections::HashMap;

    /// A rule returning a factorization through memory is handed root slots of the GC
    /// frame (`%roots`), which it only writes: a pointer stored into another slot of the
    /// frame (`%slot`) is still read by nobody but the collector. Handed to any other
    /// call, the frame may be read anywhere.
    #[test]
    fn a_rule_writing_root_slots_reads_no_other_slot_of_the_frame() {
        let ir = |callee: &str| {
            format!(
                r#"
declare void @oxidase.rule.1.lu(ptr sret({{ ptr addrspace(10), ptr addrspace(10), i64 }}), ptr, ptr addrspace(10)) #0
declare void @other(ptr sret({{ ptr addrspace(10), ptr addrspace(10), i64 }}), ptr, ptr addrspace(10))

define void @f(ptr addrspace(10) %m, ptr addrspace(10) %c) {{
  %gcframe = alloca [6 x ptr addrspace(10)], align 16
  %tp = call ptr asm "movq %fs:0, $0", "=r"()
  %ptls = getelementptr i8, ptr %tp, i64 -15720
  store ptr %gcframe, ptr %ptls, align 8
  %roots = getelementptr inbounds i8, ptr %gcframe, i64 16
  %slot = getelementptr inbounds i8, ptr %gcframe, i64 32
  store ptr addrspace(10) %c, ptr %slot, align 8
  %buf = alloca {{ ptr addrspace(10), ptr addrspace(10), i64 }}, align 8
  call void @{callee}(ptr sret({{ ptr addrspace(10), ptr addrspace(10), i64 }}) %buf, ptr %roots, ptr addrspace(10) %m)
  ret void
}}

attributes #0 = {{ "oxidase-rule-result-array-f64" }}
"#
            )
        };
        for (callee, inert) in [("oxidase.rule.1.lu", true), ("other", false)] {
            let ctx = Context::create();
            let m = OwnedModule::parse_ir(&ctx, &ir(callee)).unwrap();
            let f = m.function("f").unwrap();
            let insts: Vec<Value> = f.blocks().into_iter().flat_map(|b| b.instructions()).collect();
            let store =
                *insts.iter().find(|i| i.opcode() == Opcode::LLVMStore && i.operand(1).name() == "slot").unwrap();
            assert_eq!(super::inert_pointer_stores(&m, &insts).contains(&store), inert, "{callee}");
        }
    }

    /// An object `%o` holding another, `%i`, whose field holds a new array `%a`: a load
    /// of `%o`'s field reads `%i` by its layout, which is not known while `%a` has no
    /// shadow. In a round of the analysis before activity gives `%a` one, the load is
    /// read as no field and the refusal waits (`Memory::awaiting`); once `%a` has its
    /// shadow, the load reads a struct object and nothing waits.
    #[test]
    fn a_field_whose_object_awaits_a_shadow_waits_for_the_next_round() {
        let text = r#"
declare ptr addrspace(10) @jl_gc_pool_alloc(ptr, i32, i32)
declare ptr addrspace(10) @jl_alloc_array_1d(ptr addrspace(10), i64)

define double @f(double %x) {
  %a = call ptr addrspace(10) @jl_alloc_array_1d(ptr addrspace(10) null, i64 2)
  %i = call ptr addrspace(10) @jl_gc_pool_alloc(ptr null, i32 1, i32 32)
  store ptr addrspace(10) %a, ptr addrspace(10) %i, align 8
  %ib = getelementptr inbounds i8, ptr addrspace(10) %i, i64 8
  store double %x, ptr addrspace(10) %ib, align 8
  %o = call ptr addrspace(10) @jl_gc_pool_alloc(ptr null, i32 1, i32 32)
  store ptr addrspace(10) %i, ptr addrspace(10) %o, align 8
  %ob = getelementptr inbounds i8, ptr addrspace(10) %o, i64 8
  store double %x, ptr addrspace(10) %ob, align 8
  %again = load ptr addrspace(10), ptr addrspace(10) %o, align 8
  %b = getelementptr inbounds i8, ptr addrspace(10) %again, i64 8
  %v = load double, ptr addrspace(10) %b, align 8
  ret double %v
}
"#;
        let first = [("o", Leaf::StackMixedF64), ("i", Leaf::StackMixedF64)];
        waits_one_round(text, &first, &[("a", Leaf::ArrayF64)], "not all in sight", |mem, named, last| {
            if last {
                assert!(matches!(mem.leaf(named("again")), Some(Leaf::Object(_))), "read by its layout");
            } else {
                assert_eq!(mem.leaf(named("again")), None, "read as no field this round");
            }
        });
    }

    /// Analyses `text`'s `@f` with the allocations named in `first` shadowed, where the
    /// refusal (containing `waits_with`) waits for the next round (`Memory::awaiting`);
    /// then with those in `then` too, where nothing waits. `check` holds of both analyses
    /// (given values by name, and whether it is the last).
    fn waits_one_round(
        text: &str,
        first: &[(&str, Leaf)],
        then: &[(&str, Leaf)],
        waits_with: &str,
        check: impl for<'a> Fn(&Memory<'a>, &dyn Fn(&str) -> Value<'a>, bool),
    ) {
        let ctx = Context::create();
        let m = OwnedModule::parse_ir(&ctx, text).unwrap();
        let f = m.function("f").unwrap();
        let insts: Vec<Value> = f.blocks().into_iter().flat_map(|b| b.instructions()).collect();
        let named = |n: &str| *insts.iter().find(|i| i.name() == n).unwrap();
        let mut allocations: HashMap<Value, Leaf> = first.iter().map(|(n, l)| (named(n), *l)).collect();
        let mem = Memory::compute(&m, f, &[], &[], &allocations, "f").expect("waits, not refused");
        assert!(mem.awaiting().is_some_and(|r| r.contains(waits_with)), "the refusal waits");
        check(&mem, &named, false);
        allocations.extend(then.iter().map(|(n, l)| (named(n), *l)));
        let mem = Memory::compute(&m, f, &[], &[], &allocations, "f").expect("differentiated");
        assert_eq!(mem.awaiting(), None);
        check(&mem, &named, true);
    }

    /// Two objects `%p` and `%q`, each holding an array and a float (at byte 8), one of
    /// them chosen (`%c`) and its float written through the choice: in a round where
    /// only `%p` has its shadow, the merge of their fields' addresses waits for `%q`'s
    /// (`Memory::awaiting`) instead of being refused, so the round after, which gives it
    /// one, can differentiate it (generator seed 20261230008).
    #[test]
    fn a_merge_with_an_object_awaiting_its_shadow_waits_for_the_next_round() {
        let text = r#"
declare ptr addrspace(10) @jl_gc_pool_alloc(ptr, i32, i32)
declare ptr addrspace(10) @jl_alloc_array_1d(ptr addrspace(10), i64)

define void @f(double %x, i1 %c) {
  %a = call ptr addrspace(10) @jl_alloc_array_1d(ptr addrspace(10) null, i64 2)
  %p = call ptr addrspace(10) @jl_gc_pool_alloc(ptr null, i32 1, i32 32)
  store ptr addrspace(10) %a, ptr addrspace(10) %p, align 8
  %pf = getelementptr inbounds i8, ptr addrspace(10) %p, i64 8
  store double %x, ptr addrspace(10) %pf, align 8
  %b = call ptr addrspace(10) @jl_alloc_array_1d(ptr addrspace(10) null, i64 2)
  %q = call ptr addrspace(10) @jl_gc_pool_alloc(ptr null, i32 1, i32 32)
  store ptr addrspace(10) %b, ptr addrspace(10) %q, align 8
  %qf = getelementptr inbounds i8, ptr addrspace(10) %q, i64 8
  store double %x, ptr addrspace(10) %qf, align 8
  %chosen = select i1 %c, ptr addrspace(10) %pf, ptr addrspace(10) %qf
  store double %x, ptr addrspace(10) %chosen, align 8
  ret void
}
"#;
        let (first, then) =
            ([("a", Leaf::ArrayF64), ("p", Leaf::StackMixedF64)], [("b", Leaf::ArrayF64), ("q", Leaf::StackMixedF64)]);
        waits_one_round(text, &first, &then, "into other memory", |mem, named, last| {
            assert!(!last || mem.is_shadowed(named("chosen")));
        });
    }

    /// A `Dict`-like object `%d` whose field at byte 16 a callee refills (`rehash!`), and
    /// `%x`, read from a generator passed by reference: the field holds arrays made
    /// during the call only when every store into it, here and in the callee, stores a
    /// new array; `%x` existed when the call began when nothing writes through `%g`.
    fn module(refill: &str, through_g: &str) -> String {
        format!(
            r#"
declare ptr addrspace(10) @jl_gc_pool_alloc(ptr, i32, i32)
declare ptr addrspace(10) @jl_alloc_array_1d(ptr addrspace(10), i64)

define void @refill(ptr addrspace(10) %d, ptr addrspace(10) %old) {{
  %a = call ptr addrspace(10) @jl_alloc_array_1d(ptr addrspace(10) null, i64 4)
  %f = getelementptr inbounds i8, ptr addrspace(10) %d, i64 16
  store ptr addrspace(10) {refill}, ptr addrspace(10) %f, align 8
  ret void
}}

define ptr addrspace(10) @f(ptr addrspace(11) %g) {{
  %d = call ptr addrspace(10) @jl_gc_pool_alloc(ptr null, i32 1, i32 32)
  %a = call ptr addrspace(10) @jl_alloc_array_1d(ptr addrspace(10) null, i64 2)
  %f = getelementptr inbounds i8, ptr addrspace(10) %d, i64 16
  store ptr addrspace(10) %a, ptr addrspace(10) %f, align 8
  %x = load ptr addrspace(10), ptr addrspace(11) %g, align 8
  {through_g}
  call void @refill(ptr addrspace(10) %d, ptr addrspace(10) %x)
  %v = load ptr addrspace(10), ptr addrspace(10) %f, align 8
  ret ptr addrspace(10) %v
}}
"#
        )
    }

    /// The loads of `@f`: the generator's `%x`, then the field's `%v`.
    macro_rules! loads {
        ($m:expr) => {
            $m.function("f")
                .unwrap()
                .blocks()
                .into_iter()
                .flat_map(|b| b.instructions())
                .filter(|i| i.opcode() == Opcode::LLVMLoad)
                .collect::<Vec<Value>>()
        };
    }

    /// A new array is held by one object only when the store into it is its only store
    /// as a value (a GC frame root aside) and cannot run twice with it: not when it is
    /// stored into a second object, not when a loop stores it again without allocating
    /// anew, not when a merge of it is stored. Then its owner is that object
    /// (`allocated_owner`), whatever merges of it are read.
    #[test]
    fn a_new_array_stored_once_belongs_to_its_object() {
        let ir = |body: &str| {
            format!(
                r#"
declare ptr addrspace(10) @jl_gc_pool_alloc(ptr, i32, i32)
declare ptr addrspace(10) @jl_alloc_array_1d(ptr addrspace(10), i64)

define void @f(i1 %c) {{
entry:
  %gcframe = alloca [4 x ptr addrspace(10)], align 16
  %root = getelementptr inbounds i8, ptr %gcframe, i64 16
  %o = call ptr addrspace(10) @jl_gc_pool_alloc(ptr null, i32 1, i32 32)
  %p = call ptr addrspace(10) @jl_gc_pool_alloc(ptr null, i32 1, i32 32)
  %a = call ptr addrspace(10) @jl_alloc_array_1d(ptr addrspace(10) null, i64 2)
  store ptr addrspace(10) %a, ptr %root, align 8
  br label %loop
loop:
  {body}
  br i1 %c, label %loop, label %done
done:
  ret void
}}
"#
            )
        };
        for (body, array, once) in [
            ("store ptr addrspace(10) %a, ptr addrspace(10) %o, align 8", "a", false),
            (
                "%b = call ptr addrspace(10) @jl_alloc_array_1d(ptr addrspace(10) null, i64 2)\n  \
                 store ptr addrspace(10) %b, ptr addrspace(10) %o, align 8",
                "b",
                true,
            ),
        ] {
            let ctx = Context::create();
            let m = OwnedModule::parse_ir(&ctx, &ir(body)).unwrap();
            let f = m.function("f").unwrap();
            let insts: Vec<Value> = f.blocks().into_iter().flat_map(|b| b.instructions()).collect();
            let named = |n: &str| *insts.iter().find(|i| i.name() == n).unwrap();
            let stores: Vec<Value> = insts
                .iter()
                .copied()
                .filter(|i| i.opcode() == Opcode::LLVMStore && i.operand(1).name() != "root")
                .collect();
            // (In the loop: stored again on each iteration, without a new array; or
            // made anew on each.)
            let [store] = stores[..] else { panic!("one store") };
            assert_eq!(super::stored_once(named(array), store), once, "{body}");
        }
        let straight = |extra: &str| {
            format!(
                r#"
declare ptr addrspace(10) @jl_gc_pool_alloc(ptr, i32, i32)
declare ptr addrspace(10) @jl_alloc_array_1d(ptr addrspace(10), i64)

define void @f(i1 %c) {{
  %o = call ptr addrspace(10) @jl_gc_pool_alloc(ptr null, i32 1, i32 32)
  %p = call ptr addrspace(10) @jl_gc_pool_alloc(ptr null, i32 1, i32 32)
  %a = call ptr addrspace(10) @jl_alloc_array_1d(ptr addrspace(10) null, i64 2)
  store ptr addrspace(10) %a, ptr addrspace(10) %o, align 8
  %r = load ptr addrspace(10), ptr addrspace(10) %o, align 8
  %m = select i1 %c, ptr addrspace(10) %a, ptr addrspace(10) %r
  {extra}
  ret void
}}
"#
            )
        };
        for (extra, owned) in [
            ("", true),
            ("store ptr addrspace(10) %a, ptr addrspace(10) %p, align 8", false),
            ("store ptr addrspace(10) %m, ptr addrspace(10) %p, align 8", false),
        ] {
            let ctx = Context::create();
            let m = OwnedModule::parse_ir(&ctx, &straight(extra)).unwrap();
            let f = m.function("f").unwrap();
            let insts: Vec<Value> = f.blocks().into_iter().flat_map(|b| b.instructions()).collect();
            let named = |n: &str| *insts.iter().find(|i| i.name() == n).unwrap();
            let owner = super::allocated_owner(&m, named("a"), 4);
            assert_eq!(owner == Some(named("o")), owned, "{extra}");
            // (The load of the field and the merge of it with the array: the same owner.)
            assert_eq!(super::allocated_owner(&m, named("r"), 4), Some(named("o")));
            assert_eq!(super::allocated_owner(&m, named("m"), 4) == Some(named("o")), owned, "{extra}");
        }
    }

    #[test]
    fn a_field_refilled_with_new_arrays_holds_only_fresh_ones() {
        let ctx = Context::create();
        let m = OwnedModule::parse_ir(&ctx, &module("%a", "")).unwrap();
        let [x, v] = loads!(m)[..] else { panic!("two loads") };
        assert!(holds_only_fresh_arrays(&m, v));
        assert!(loaded_from_readonly_param(x));
    }

    /// The callee stores the array it was handed, which existed before the call: the
    /// field may hold `%x` itself (the two would alias: an element address of `%x`
    /// taken before a resize of the field's array would be stale).
    #[test]
    fn a_field_refilled_with_an_older_array_does_not() {
        let ctx = Context::create();
        let m = OwnedModule::parse_ir(&ctx, &module("%old", "")).unwrap();
        let [_, v] = loads!(m)[..] else { panic!("two loads") };
        assert!(!holds_only_fresh_arrays(&m, v));
    }

    /// The object merged with another (`rehash!`'s result is the `Dict` again): a store
    /// through the merge counts as a store into the object.
    #[test]
    fn a_store_through_a_merge_of_the_object_counts() {
        let ir = |stored: &str| {
            format!(
                r#"
declare ptr addrspace(10) @jl_gc_pool_alloc(ptr, i32, i32)
declare ptr addrspace(10) @jl_alloc_array_1d(ptr addrspace(10), i64)

define ptr addrspace(10) @f(i1 %c, ptr addrspace(10) %old) {{
top:
  %d = call ptr addrspace(10) @jl_gc_pool_alloc(ptr null, i32 1, i32 32)
  %e = call ptr addrspace(10) @jl_gc_pool_alloc(ptr null, i32 1, i32 32)
  %a = call ptr addrspace(10) @jl_alloc_array_1d(ptr addrspace(10) null, i64 2)
  %f = getelementptr inbounds i8, ptr addrspace(10) %d, i64 16
  store ptr addrspace(10) %a, ptr addrspace(10) %f, align 8
  br i1 %c, label %l, label %r
l:
  br label %j
r:
  br label %j
j:
  %m = phi ptr addrspace(10) [ %d, %l ], [ %e, %r ]
  %n = call ptr addrspace(10) @jl_alloc_array_1d(ptr addrspace(10) null, i64 4)
  %g = getelementptr inbounds i8, ptr addrspace(10) %m, i64 16
  store ptr addrspace(10) {stored}, ptr addrspace(10) %g, align 8
  %v = load ptr addrspace(10), ptr addrspace(10) %f, align 8
  ret ptr addrspace(10) %v
}}
"#
            )
        };
        for (stored, fresh) in [("%n", true), ("%old", false)] {
            let ctx = Context::create();
            let m = OwnedModule::parse_ir(&ctx, &ir(stored)).unwrap();
            let [v] = loads!(m)[..] else { panic!("one load") };
            assert_eq!(holds_only_fresh_arrays(&m, v), fresh, "{stored}");
        }
    }

    /// Written through, the generator's memory may hold a new array by the time `%x`
    /// is loaded.
    #[test]
    fn memory_written_through_a_parameter_is_not_read_only() {
        let ctx = Context::create();
        let m = OwnedModule::parse_ir(&ctx, &module("%a", "store ptr addrspace(10) %d, ptr addrspace(11) %g, align 8"))
            .unwrap();
        let [x, _] = loads!(m)[..] else { panic!("two loads") };
        assert!(!loaded_from_readonly_param(x));
    }

    /// `collect`'s result when inference cannot tell its element type: a dynamic call's
    /// result merged with the empty array allocated when there is nothing to collect.
    /// What the code reads through the merge (a data pointer) it reads of the result: an
    /// array of floats. Merged with an argument instead, the merge is not the result's.
    #[test]
    fn a_dynamic_result_is_read_through_a_merge_with_an_empty_array() {
        let ir = |other: &str| {
            format!(
                r#"
declare ptr addrspace(10) @jl_alloc_array_1d(ptr addrspace(10), i64)
declare ptr addrspace(10) @oxidase.dynamic.1(ptr addrspace(10), ptr addrspace(10))

define double @f(i1 %empty, ptr addrspace(10) %g, ptr addrspace(10) %t, ptr addrspace(10) %arg) {{
top:
  br i1 %empty, label %none, label %some
none:
  %e = {other}
  br label %join
some:
  %r = call ptr addrspace(10) @oxidase.dynamic.1(ptr addrspace(10) %g, ptr addrspace(10) %t)
  br label %join
join:
  %a = phi ptr addrspace(10) [ %e, %none ], [ %r, %some ]
  %data = load ptr addrspace(13), ptr addrspace(10) %a, align 8
  %v = load double, ptr addrspace(13) %data, align 8
  ret double %v
}}
"#
            )
        };
        let alloc = "call ptr addrspace(10) @jl_alloc_array_1d(ptr addrspace(10) %t, i64 0)";
        let argument = "getelementptr i8, ptr addrspace(10) %arg, i64 0";
        for (other, leaf) in [(alloc, Leaf::ArrayF64), (argument, Leaf::F64)] {
            let ctx = Context::create();
            let m = OwnedModule::parse_ir(&ctx, &ir(other)).unwrap();
            let f = m.function("f").unwrap();
            let r = f.blocks().into_iter().flat_map(|b| b.instructions()).find(|i| i.name() == "r").unwrap();
            assert_eq!(super::hook_result_leaf(r), leaf, "{other}");
            assert_eq!(
                crate::rules::calls::splat::result_and_merges(r).len(),
                if leaf == Leaf::ArrayF64 { 2 } else { 1 }
            );
        }
    }

    /// A new list node's stores leave out its `next` when it is `nothing`; it is still a
    /// node of the list's layout, and joins the node Julia builds on the other path
    /// (linked to the old `next`, read by its type). A missing float, or a field of
    /// another layout, is not.
    #[test]
    fn a_node_ended_by_nothing_is_a_node() {
        use crate::request::Layout::{Array, Object, SelfRef, F64};
        let node = vec![(0, Array(vec![(0, F64)])), (8, F64), (16, SelfRef)];
        let ended = vec![(0, Array(vec![(0, F64)])), (8, F64)];
        let linked = vec![(0, Array(vec![(0, F64)])), (8, F64), (16, Object(node.clone()))];
        assert!(super::lays_out_as(&ended, &node));
        assert!(super::lays_out_as(&linked, &node));
        assert!(!super::lays_out_as(&[(0, Array(vec![(0, F64)]))], &node), "a float left out");
        assert!(!super::lays_out_as(&[(0, Array(vec![(0, F64)])), (8, F64), (16, F64)], &node));
        assert_eq!(super::joined_layout(&ended, &linked), Some(linked.clone()));
        assert_eq!(super::joined_layout(&linked, &ended), Some(linked.clone()));
        assert_eq!(super::joined_layout(&ended, &[(8, F64)]), Some(ended.clone()), "an array is a reference");
        assert_eq!(super::joined_layout(&ended, &[(0, Array(vec![(0, F64)]))]), None, "a float left out");
        assert_eq!(super::joined_layout(&ended, &[(0, Array(vec![(0, F64)])), (8, F64), (16, F64)]), None);
    }

    /// A callee that only reads the array it is handed, through its data pointer and a
    /// recursive call of itself (Base's pairwise `mapreduce_impl`), leaves nothing half
    /// written when it throws; one that stores through the data pointer does not.
    #[test]
    fn a_callee_that_only_reads_its_array() {
        let ir = |write: &str| {
            format!(
                r#"
declare void @jl_bounds_error_ints(ptr addrspace(12), ptr, i64) noreturn

define double @h(ptr addrspace(10) %a, i64 %n) {{
top:
  %c = icmp eq i64 %n, 0
  br i1 %c, label %leaf, label %split
leaf:
  %data = load ptr addrspace(13), ptr addrspace(10) %a, align 8
  %v = load double, ptr addrspace(13) %data, align 8
  {write}
  ret double %v
split:
  %m = sub i64 %n, 1
  %r = call double @h(ptr addrspace(10) %a, i64 %m)
  %e = addrspacecast ptr addrspace(10) %a to ptr addrspace(12)
  %bad = icmp slt i64 %n, 0
  br i1 %bad, label %oob, label %done
oob:
  call void @jl_bounds_error_ints(ptr addrspace(12) %e, ptr null, i64 1)
  unreachable
done:
  ret double %r
}}

define double @f(ptr addrspace(10) %x) {{
top:
  %s = call double @h(ptr addrspace(10) %x, i64 4)
  ret double %s
}}

define double @sink() {{
top:
  ret double 0.0
}}
"#
            )
        };
        for (write, reads) in [("", true), ("store double 0.0, ptr addrspace(13) %data, align 8", false)] {
            let ctx = Context::create();
            let m = OwnedModule::parse_ir(&ctx, &ir(write)).unwrap();
            let f = m.function("f").unwrap();
            let s = f.blocks().into_iter().flat_map(|b| b.instructions()).find(|i| i.name() == "s").unwrap();
            assert_eq!(super::call_only_reads(s, &|f| f), reads, "{write}");
            // The same callee once its body moved into its derivative function (a callee
            // of the caller's, generated first): its body is read in the primal copy.
            let h = m.function("h").unwrap();
            let copy = m.clone_function(h, "h.primal").unwrap();
            let sink = m.function("sink").unwrap();
            for b in h.blocks() {
                b.move_to_end_of(sink);
            }
            assert!(!super::call_only_reads(s, &|f| f), "{write}: a declaration is not read");
            assert_eq!(super::call_only_reads(s, &|f| if f == h { copy } else { f }), reads, "{write}");
        }
    }

    /// Julia's fallback for a struct built from a value of a type it could not infer: a
    /// dynamic call returning the struct, merged with the one built inline. Merged with
    /// a box of a number (8 bytes) instead, the call's result is the number it reads.
    #[test]
    fn a_dynamic_call_merged_with_a_struct_returns_a_struct() {
        let ir = |bytes: u32| {
            format!(
                r#"
declare ptr addrspace(10) @jl_gc_pool_alloc(ptr, i32, i32)
declare ptr addrspace(10) @oxidase.dynamic.1(ptr addrspace(10), ptr addrspace(10))

define ptr addrspace(10) @f(i1 %inline, ptr addrspace(10) %g, ptr addrspace(10) %t) {{
top:
  br i1 %inline, label %built, label %fallback
built:
  %o = call ptr addrspace(10) @jl_gc_pool_alloc(ptr null, i32 1424, i32 {bytes})
  %h = getelementptr i8, ptr addrspace(10) %o, i64 -8
  store ptr addrspace(10) addrspacecast (ptr inttoptr (i64 4096 to ptr) to ptr addrspace(10)), ptr addrspace(10) %h, align 8
  br label %join
fallback:
  %r = call ptr addrspace(10) @oxidase.dynamic.1(ptr addrspace(10) %g, ptr addrspace(10) %t)
  br label %join
join:
  %c = phi ptr addrspace(10) [ %o, %built ], [ %r, %fallback ]
  ret ptr addrspace(10) %c
}}
"#
            )
        };
        for (bytes, fallback) in [(32, true), (16, false)] {
            let ctx = Context::create();
            let m = OwnedModule::parse_ir(&ctx, &ir(bytes)).unwrap();
            let f = m.function("f").unwrap();
            let r = f.blocks().into_iter().flat_map(|b| b.instructions()).find(|i| i.name() == "r").unwrap();
            assert_eq!(super::returns_struct_object(r), fallback, "{bytes} bytes");
        }
    }

    /// A GC frame slot handed by reference to a callee (`nocapture dereferenceable(n)`:
    /// a struct of `n` bytes) bounds what the callee reads there, and so which slots
    /// beside it are unread (`shadow_slot_unread`).
    #[test]
    fn a_struct_passed_by_reference_bounds_what_its_callee_reads() {
        // (Julia's `mapreduce_impl` given a closure rooted in a GC frame slot: it reads
        // that slot's 8 bytes, not the slot beside it, where a `Const` number's box is.)
        let ir = |attrs: &str| {
            format!(
                r#"
declare ptr addrspace(10) @g(ptr addrspace(11) {attrs}, ptr addrspace(11))

define void @f(ptr addrspace(11) %q) {{
  %frame = alloca [4 x ptr addrspace(10)], align 16
  %slot = getelementptr inbounds i8, ptr %frame, i64 16
  %p = addrspacecast ptr %slot to ptr addrspace(11)
  %r = call ptr addrspace(10) @g(ptr addrspace(11) %p, ptr addrspace(11) %q)
  ret void
}}
"#
            )
        };
        for (attrs, bytes) in [
            ("nocapture readonly dereferenceable(8)", Some(8)),
            ("nocapture dereferenceable(16)", Some(16)),
            // (A callee that may keep the address, or that says nothing of the size.)
            ("readonly dereferenceable(8)", None),
            ("nocapture readonly", None),
        ] {
            let ctx = Context::create();
            let m = OwnedModule::parse_ir(&ctx, &ir(attrs)).unwrap();
            let f = m.function("f").unwrap();
            let insts: Vec<Value> = f.blocks().into_iter().flat_map(|b| b.instructions()).collect();
            let call = insts.iter().copied().find(|i| i.opcode() == Opcode::LLVMCall).unwrap();
            assert_eq!(super::by_reference_bytes(call, call.operand(0)), bytes, "{attrs}");
            // (An address the callee is not handed.)
            assert_eq!(super::by_reference_bytes(call, insts[0]), None, "{attrs}");
        }
    }

    /// A pointer stored into the arguments array of a call that only a trap follows
    /// (Julia's inference says it never returns: `mapreduce_empty`'s error) is read by
    /// nothing that has a derivative; followed by a return, the call may read it.
    #[test]
    fn an_argument_of_a_call_only_a_trap_follows_is_inert() {
        let ir = |after: &str| {
            format!(
                r#"
declare ptr addrspace(10) @jl_invoke(ptr addrspace(10), ptr, i32, ptr addrspace(10))
declare void @llvm.trap()

define void @f(ptr addrspace(10) %x, ptr addrspace(10) %m) {{
  %args = alloca [2 x ptr addrspace(10)], align 8
  store ptr addrspace(10) %x, ptr %args, align 8
  %r = call ptr addrspace(10) @jl_invoke(ptr addrspace(10) %m, ptr %args, i32 1, ptr addrspace(10) %m)
  {after}
}}
"#
            )
        };
        for (after, inert) in [("call void @llvm.trap()\n  unreachable", true), ("ret void", false)] {
            let ctx = Context::create();
            let m = OwnedModule::parse_ir(&ctx, &ir(after)).unwrap();
            let f = m.function("f").unwrap();
            let insts: Vec<Value> = f.blocks().into_iter().flat_map(|b| b.instructions()).collect();
            let store = insts.iter().copied().find(|i| i.opcode() == Opcode::LLVMStore).unwrap();
            assert_eq!(super::inert_pointer_stores(&m, &insts).contains(&store), inert, "{after}");
        }
    }

    /// A heap object a struct of pointers is copied into whole is read where it is
    /// (`read_in_place`) when its fields are only loaded and its address only rooted in
    /// a GC frame: Julia boxing a closure for a `jl_invoke` the engine inlined. Not when
    /// the address goes into a stack slot that is no GC frame, to a call, or when a field
    /// is written.
    #[test]
    fn a_boxed_closure_read_by_loads_is_read_in_place() {
        let ir = |uses: &str| {
            format!(
                r#"
declare ptr addrspace(10) @jl_gc_pool_alloc(ptr, i32, i32)
declare void @g(ptr addrspace(10))
declare void @llvm.memcpy.p10.p0.i64(ptr addrspace(10), ptr, i64, i1)

define void @f() {{
  %gcframe = alloca [4 x ptr addrspace(10)], align 16
  %thread = call ptr asm "movq %fs:0, $0", "=r"()
  %ptls = getelementptr i8, ptr %thread, i64 -15720
  store ptr %gcframe, ptr %ptls, align 8
  %closure = getelementptr inbounds i8, ptr %gcframe, i64 16
  %slot = getelementptr inbounds i8, ptr %gcframe, i64 32
  %args = alloca [2 x ptr addrspace(10)], align 8
  %o = call ptr addrspace(10) @jl_gc_pool_alloc(ptr %ptls, i32 1424, i32 32)
  %tag = getelementptr i8, ptr addrspace(10) %o, i64 -8
  store ptr addrspace(10) null, ptr addrspace(10) %tag, align 8
  call void @llvm.memcpy.p10.p0.i64(ptr addrspace(10) %o, ptr %closure, i64 16, i1 false)
  %second = getelementptr inbounds i8, ptr addrspace(10) %o, i64 8
  %x = load ptr addrspace(10), ptr addrspace(10) %o, align 8
  %box = load ptr addrspace(10), ptr addrspace(10) %second, align 8
  {uses}
  ret void
}}
"#
            )
        };
        for (uses, in_place) in [
            ("store ptr addrspace(10) %o, ptr %slot, align 8", true),
            ("store ptr addrspace(10) %o, ptr %args, align 8", false),
            ("call void @g(ptr addrspace(10) %o)", false),
            ("store ptr addrspace(10) null, ptr addrspace(10) %second, align 8", false),
        ] {
            let ctx = Context::create();
            let m = OwnedModule::parse_ir(&ctx, &ir(uses)).unwrap();
            let f = m.function("f").unwrap();
            let insts: Vec<Value> = f.blocks().into_iter().flat_map(|b| b.instructions()).collect();
            let object = *insts.iter().find(|i| i.name() == "o").unwrap();
            let copy = *insts.iter().find(|i| i.opcode() == Opcode::LLVMCall && i.operand(0) == object).unwrap();
            assert_eq!(super::read_in_place(object, copy), in_place, "{uses}");
        }
    }
}
