//! Type analysis: what every value of a function holds, byte by byte — floats,
//! integers, pointers, and through each pointer what the memory behind it holds. It is
//! Enzyme's model (a type tree per value), and the question the shadow memory asks of
//! it is the same: may this memory hold floats (then it needs a shadow), may it hold
//! pointers (then the shadow holds their shadows)?
//!
//! A value's `TypeTree` maps paths to `Kind`s. A path's first offset is a byte offset
//! into the value itself (0 for a scalar, a field's offset for a struct value); each
//! further offset goes through the pointer found there, into the memory it points to.
//! `ANY` stands for every offset: the elements of an array. So a Julia
//! `Vector{Float64}` object reads
//!
//! ```text
//! [0]:ptr  [0,0]:ptr  [0,0,*]:f64  [0,8]:int ...
//! ```
//!
//! the object pointer, its data pointer at offset 0 of the object, `Float64`s at every
//! offset of the data, the length at offset 8.
//!
//! The analysis starts from what Julia says about the arguments (`request::Layout`) and
//! from the LLVM types of values (a `double` is a `Float64`, a `ptr` a pointer), and
//! propagates in both directions until nothing changes: through loads and stores
//! (what a load reads is what the memory holds there, and the other way), address
//! arithmetic, casts, merges, aggregates, `memcpy`, and the runtime's functions that
//! make arrays, boxes and objects (`julia::Runtime`). Integers are known by their use
//! (an index, a count, the result of integer arithmetic), never by their LLVM type:
//! Julia copies floats as `i64` bits. Two kinds meeting at one path make a `Conflict`,
//! which a client reads as "unknown".
//!
//! Paths are kept finite: at most `MAX_DEPTH` pointers deep and offsets within
//! `MAX_OFFSET`; a pointer that steps through memory in a loop (a phi fed by an
//! address computed from itself), or that merges addresses at different offsets from
//! one base, has only `ANY` offsets. The fixed point is then
//! reached in a few rounds; if it is not within `MAX_ROUNDS`, or a tree grows past
//! `MAX_TREE_PATHS`, `converged` is false and clients must treat every answer as
//! unknown.
//!
//! `OXIDASE_PRINT=types` prints the result (`Types::print`); golden tests in
//! `tests/type_analysis.rs` keep three of them.

use crate::julia::{ArrayCall, ArrayField, Boxed};
use crate::llvm::{Function, Module, Opcode, Type, Value};
use crate::request::{Layout, Leaf};
use crate::symbols::callee_name;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write;

/// Every offset (an array's elements), in a path.
pub const ANY: i64 = i64::MIN;
/// Pointers followed at most, in a path.
const MAX_DEPTH: usize = 6;
/// Byte offsets kept, either way from a pointer.
const MAX_OFFSET: i64 = 1 << 16;
/// Offsets an address computation may add, at most, to be followed one by one.
const MAX_GEP_OFFSETS: usize = 16;
/// Rounds over the function before the analysis gives up.
const MAX_ROUNDS: usize = 64;
/// Paths one value's tree may hold before the analysis gives up: offsets multiply at
/// each pointer followed (a list node's fields, then the next node's...), and trees
/// of millions of paths took gigabytes and did not finish.
const MAX_TREE_PATHS: usize = 4096;

/// What the bytes at one path hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// `Float64` data.
    F64,
    /// `Float32` data.
    F32,
    /// An integer (never differentiated).
    Integer,
    /// A pointer.
    Pointer,
    /// Two of the above met here: unknown.
    Conflict,
}

impl Kind {
    /// The kind of a scalar LLVM type, as far as the type tells (integers: nothing).
    fn of_type(t: Type) -> Option<Kind> {
        match t.float_bits() {
            64 => Some(Kind::F64),
            32 => Some(Kind::F32),
            _ if t.is_pointer() => Some(Kind::Pointer),
            _ => None,
        }
    }

    /// The name in printed trees.
    fn name(self) -> &'static str {
        match self {
            Kind::F64 => "f64",
            Kind::F32 => "f32",
            Kind::Integer => "int",
            Kind::Pointer => "ptr",
            Kind::Conflict => "conflict",
        }
    }
}

/// A path (see the module docs), held inline: trees hold thousands of them, and
/// building each on the heap was most of the analysis's time.
#[derive(Clone, Copy)]
pub struct Path {
    len: u8,
    at: [i64; MAX_DEPTH],
}

impl Path {
    /// The path of `parts`' offsets in order, or `None` when deeper than `MAX_DEPTH`.
    fn of(parts: &[&[i64]]) -> Option<Path> {
        let mut p = Path { len: 0, at: [0; MAX_DEPTH] };
        for &o in parts.iter().flat_map(|s| s.iter()) {
            *p.at.get_mut(usize::from(p.len))? = o;
            p.len += 1;
        }
        Some(p)
    }
}

impl std::ops::Deref for Path {
    type Target = [i64];
    fn deref(&self) -> &[i64] {
        &self.at[..usize::from(self.len)]
    }
}

impl std::borrow::Borrow<[i64]> for Path {
    fn borrow(&self) -> &[i64] {
        self
    }
}

impl PartialEq for Path {
    fn eq(&self, other: &Path) -> bool {
        **self == **other
    }
}

impl Eq for Path {}

// (Ordered as the offsets are, as slices: `Borrow<[i64]>` needs the same order.)
impl PartialOrd for Path {
    fn partial_cmp(&self, other: &Path) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Path {
    fn cmp(&self, other: &Path) -> std::cmp::Ordering {
        (**self).cmp(&**other)
    }
}

impl std::fmt::Debug for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

/// What one value holds: kinds by path (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TypeTree(BTreeMap<Path, Kind>);

impl TypeTree {
    /// `kind` at offset 0.
    pub fn scalar(kind: Kind) -> TypeTree {
        let mut t = TypeTree::default();
        t.insert(&[0], kind);
        t
    }

    /// For the tree of an array object: whether its elements hold references and numbers
    /// side by side (immutable structs holding arrays and floats, stored inline), a
    /// conflict at every offset of its data.
    pub fn mixed_elements(&self) -> bool {
        self.get(&[0, 0, ANY]) == Some(Kind::Conflict)
    }

    /// Whether nothing is known.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The kind at exactly `path`.
    pub fn get(&self, path: &[i64]) -> Option<Kind> {
        self.0.get(path).copied()
    }

    /// The entries.
    pub fn entries(&self) -> impl Iterator<Item = (&[i64], Kind)> {
        self.0.iter().map(|(p, k)| (&**p, *k))
    }

    /// Adds `kind` at `path` (a different kind there makes a `Conflict`); whether the
    /// tree changed. Paths too deep or too far are dropped.
    pub fn insert(&mut self, path: &[i64], kind: Kind) -> bool {
        self.insert_parts(&[path], kind)
    }

    /// `insert` of the path made of `parts` one after the other.
    fn insert_parts(&mut self, parts: &[&[i64]], kind: Kind) -> bool {
        let Some(path) = Path::of(parts) else { return false };
        if path.is_empty() || path.iter().any(|&o| o != ANY && o.abs() > MAX_OFFSET) {
            return false;
        }
        match self.0.get_mut(&path) {
            Some(k) if *k == kind || *k == Kind::Conflict => false,
            Some(k) => {
                *k = Kind::Conflict;
                true
            }
            None => {
                self.0.insert(path, kind);
                true
            }
        }
    }

    /// Adds every entry of `other`; whether the tree changed.
    pub fn merge(&mut self, other: &TypeTree) -> bool {
        let mut changed = false;
        for (p, k) in &other.0 {
            changed |= self.insert(p, *k);
        }
        changed
    }

    /// A pointer to memory holding `memory` (a tree whose first offsets are offsets
    /// into that memory).
    pub fn pointer_to(memory: &TypeTree) -> TypeTree {
        let mut t = TypeTree::scalar(Kind::Pointer);
        for (p, k) in &memory.0 {
            t.insert_parts(&[&[0], p], *k);
        }
        t
    }

    /// What the memory this pointer value points to holds.
    pub fn pointee(&self) -> TypeTree {
        let mut t = TypeTree::default();
        for (p, k) in &self.0 {
            if p.len() >= 2 && (p[0] == 0 || p[0] == ANY) {
                t.insert(&p[1..], *k);
            }
        }
        t
    }

    /// This tree (of memory, or of an aggregate value) with its first offsets moved by
    /// `delta`; `ANY` stays.
    fn shifted(&self, delta: i64) -> TypeTree {
        let mut t = TypeTree::default();
        for (p, k) in &self.0 {
            let first = if p[0] == ANY { ANY } else { p[0] + delta };
            t.insert_parts(&[&[first], &p[1..]], *k);
        }
        t
    }

    /// The entries whose first offset lies in `[start, end)`, moved to start at 0, with
    /// the `ANY` entries at each of `leaves`' offsets (what a value of that layout read
    /// at `start` holds).
    fn window(&self, start: i64, end: i64, leaves: &[i64]) -> TypeTree {
        let mut t = TypeTree::default();
        for (p, k) in &self.0 {
            if p[0] == ANY {
                for &o in leaves {
                    t.insert_parts(&[&[o], &p[1..]], *k);
                }
            } else if (start..end).contains(&p[0]) {
                t.insert_parts(&[&[p[0] - start], &p[1..]], *k);
            }
        }
        t
    }

    /// The entries at every offset only (`ANY`): what each element of an array holds.
    fn elements(&self) -> TypeTree {
        TypeTree(self.0.iter().filter(|(p, _)| p[0] == ANY).map(|(p, k)| (*p, *k)).collect())
    }

    /// The first offsets of this memory tree made `ANY`: the same kinds, anywhere.
    fn anywhere(&self) -> TypeTree {
        let mut t = TypeTree::default();
        for (p, k) in &self.0 {
            t.insert_parts(&[&[ANY], &p[1..]], *k);
        }
        t
    }

    /// This pointer value's tree with every offset into its memory made `ANY`.
    fn strided(&self) -> TypeTree {
        let mut t = TypeTree::default();
        for (p, k) in &self.0 {
            let mut q = *p;
            if q.len >= 2 {
                q.at[1] = ANY;
            }
            t.insert(&q, *k);
        }
        t
    }
}

impl std::fmt::Display for TypeTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let entries: Vec<String> = self
            .0
            .iter()
            .map(|(p, k)| {
                let path: Vec<String> =
                    p.iter().map(|&o| if o == ANY { "*".to_string() } else { o.to_string() }).collect();
                format!("[{}]:{}", path.join(","), k.name())
            })
            .collect();
        write!(f, "{{{}}}", entries.join(" "))
    }
}

/// The tree of a Julia array object whose elements hold `element`.
pub fn array_object(element: &TypeTree) -> TypeTree {
    let mut memory = TypeTree::default();
    for &(at, field) in crate::julia::current().array_fields {
        let at = at as i64;
        match field {
            ArrayField::Data => {
                memory.merge(&TypeTree::pointer_to(&element.anywhere()).shifted(at));
            }
            ArrayField::Integer => {
                memory.insert(&[at], Kind::Integer);
            }
        }
    }
    TypeTree::pointer_to(&memory)
}

/// What Julia says an argument holds (`request::Layout`: its fields, or the object or
/// array it points to), as the tree of the argument's value.
pub fn seed(fields: &[(u64, Layout)]) -> TypeTree {
    let mut tree = TypeTree::default();
    for (at, layout) in fields {
        tree.merge(&layout_tree(layout).shifted(*at as i64));
    }
    tree
}

/// What the shadow memory says of a root it was given (`request::Leaf`), as a tree: an
/// array's elements' float type, a struct object's layout, or a pointer to memory (a
/// struct of floats by reference) whose layout it does not say.
pub fn seed_leaf(leaf: Leaf) -> TypeTree {
    match leaf {
        Leaf::ArrayF64 => array_object(&TypeTree::scalar(Kind::F64)),
        Leaf::ArrayF32 => array_object(&TypeTree::scalar(Kind::F32)),
        Leaf::Object(fields) => TypeTree::pointer_to(&seed(fields)),
        Leaf::Objects(fields) => array_object(&TypeTree::pointer_to(&seed(fields))),
        Leaf::F64 | Leaf::F32 | Leaf::ObjectsData(_) => TypeTree::pointer_to(&TypeTree::default()),
        Leaf::StackArraysF64 | Leaf::StackMixedF64 => TypeTree::default(),
    }
}

/// The tree of a value laid out as `layout`, at offset 0.
fn layout_tree(layout: &Layout) -> TypeTree {
    match layout {
        Layout::F64 => TypeTree::scalar(Kind::F64),
        Layout::F32 => TypeTree::scalar(Kind::F32),
        Layout::Integer => TypeTree::scalar(Kind::Integer),
        // (A self-reference's pointee would be the tree being built: left a pointer.)
        Layout::Pointer | Layout::SelfRef => TypeTree::scalar(Kind::Pointer),
        // (What an inactive field holds is not said: nothing the derivative follows.)
        Layout::Inactive => TypeTree::default(),
        Layout::Object(fields) => TypeTree::pointer_to(&seed(fields)),
        // An element's numbers in place: the elements' float type at every offset
        // (integers beside them carry no derivative, and a path holds one kind); an
        // element that is a pointer (an array of arrays or objects) is followed; one
        // that holds both (an immutable struct of an array and a float, inline) is a
        // conflict at every offset.
        Layout::Array(fields) => {
            let reference =
                |l: &Layout| matches!(l, Layout::Pointer | Layout::SelfRef | Layout::Object(_) | Layout::Array(_));
            let element = match fields.iter().find(|(_, l)| matches!(l, Layout::F64 | Layout::F32)) {
                Some((_, l)) if !fields.iter().any(|(_, l)| reference(l)) => layout_tree(l),
                _ => seed(fields),
            };
            array_object(&element)
        }
    }
}

/// The type trees of one function's values.
pub struct Types<'ctx> {
    trees: HashMap<Value<'ctx>, TypeTree>,
    /// Objects embedded by address, by address (`Propagation::objects`).
    objects: HashMap<u64, Value<'ctx>>,
    /// Whether the propagation reached its fixed point (if not, nothing is known).
    pub converged: bool,
}

/// The propagation's state: trees so far, and pointers that step through memory.
struct Propagation<'ctx> {
    m: &'ctx Module,
    trees: HashMap<Value<'ctx>, TypeTree>,
    strided: HashSet<Value<'ctx>>,
    /// Addresses in the thread's state (which links the GC frames of every function on
    /// the stack): nothing is known of them, and nothing flows through them.
    thread_state: HashSet<Value<'ctx>>,
    /// Addresses into GC frames whose slot holds different objects over time (code
    /// generation reuses a root slot): what the slot holds flows to the loads from it,
    /// but not back to the values stored into it, nor from those loads to the slot.
    /// (A slot that roots one object, perhaps passed on as a closure's or a tuple's
    /// memory, is memory like any other.)
    reused_slots: HashSet<Value<'ctx>>,
    /// Objects Julia embeds by address (a global array): one value stands for all the
    /// constant expressions of one address (`objects`).
    objects: HashMap<u64, Value<'ctx>>,
    changed: bool,
    /// The values whose trees the current step changed (by their `object_key`).
    grown: Vec<Value<'ctx>>,
    /// A tree grew past `MAX_TREE_PATHS`: nothing is known (`converged` false).
    overflow: bool,
}

/// The value standing for `v` in `objects`: the first constant expression seen with
/// `v`'s address, or `v`.
fn object_key<'ctx>(objects: &HashMap<u64, Value<'ctx>>, v: Value<'ctx>) -> Value<'ctx> {
    match crate::llvm::const_address(v) {
        Some(a) => objects.get(&a).copied().unwrap_or(v),
        None => v,
    }
}

/// The objects the instructions refer to by a constant, nonzero address.
fn embedded_objects<'ctx>(insts: &[Value<'ctx>]) -> HashMap<u64, Value<'ctx>> {
    let mut objects = HashMap::new();
    for &i in insts {
        for v in i.operands() {
            if let Some(a) = crate::llvm::const_address(v).filter(|&a| a != 0) {
                objects.entry(a).or_insert(v);
            }
        }
    }
    objects
}

impl<'ctx> Propagation<'ctx> {
    /// What `v` holds so far (borrowed: most steps read a tree to derive another).
    fn tree(&self, v: Value<'ctx>) -> std::borrow::Cow<'_, TypeTree> {
        static EMPTY: TypeTree = TypeTree(BTreeMap::new());
        let known = self.trees.get(&object_key(&self.objects, v));
        if v.is_constant() || v.is_function() {
            // A constant's own bytes, as its type says (never updated).
            let mut t = known.cloned().unwrap_or_default();
            t.merge(&self.type_facts(v.ty()));
            return std::borrow::Cow::Owned(t);
        }
        std::borrow::Cow::Borrowed(known.unwrap_or(&EMPTY))
    }

    /// What `ty`'s LLVM type says about a value of it.
    fn type_facts(&self, ty: Type<'ctx>) -> TypeTree {
        let mut t = TypeTree::default();
        if ty.is_void() || ty.kind() == llvm_sys::LLVMTypeKind::LLVMLabelTypeKind {
            return t;
        }
        for (at, leaf) in self.m.scalar_leaves(ty) {
            if let Some(k) = Kind::of_type(leaf) {
                t.insert(&[at as i64], k);
            }
        }
        t
    }

    /// Merges `t` into `v`'s tree (not a constant's, but an object's embedded by
    /// address).
    fn add(&mut self, v: Value<'ctx>, t: &TypeTree) {
        let v = object_key(&self.objects, v);
        let object = crate::llvm::const_address(v).is_some_and(|a| self.objects.contains_key(&a));
        let known = v.is_instruction() || v.is_argument() || object;
        if t.is_empty() || !known || self.thread_state.contains(&v) {
            return;
        }
        let t = if self.strided.contains(&v) { t.strided() } else { t.clone() };
        let entry = self.trees.entry(v).or_default();
        if entry.merge(&t) {
            self.changed = true;
            self.grown.push(v);
        }
        self.overflow |= entry.0.len() > MAX_TREE_PATHS;
    }

    fn add_kind(&mut self, v: Value<'ctx>, kind: Kind) {
        self.add(v, &TypeTree::scalar(kind));
    }

    /// The offsets of `ty`'s scalar leaves, where an array's element kinds are read.
    fn leaf_offsets(&self, ty: Type<'ctx>) -> Vec<i64> {
        self.m.scalar_leaves(ty).into_iter().map(|(o, _)| o as i64).collect()
    }

    /// `value` is what pointer `p` points to at offset 0: a load reads it, or a store
    /// writes it.
    fn access(&mut self, value: Value<'ctx>, p: Value<'ctx>, load: bool) {
        let ty = value.ty();
        let size = self.m.size_of(ty) as i64;
        let one_way = self.reused_slots.contains(&p);
        if load || !one_way {
            let read = self.tree(p).pointee().window(0, size, &self.leaf_offsets(ty));
            self.add(value, &read);
        }
        if !load || !one_way {
            let written = self.tree(value).window(0, size, &[]);
            self.add(p, &TypeTree::pointer_to(&written));
        }
    }

    fn step(&mut self, i: Value<'ctx>) {
        match i.opcode() {
            Opcode::LLVMLoad if self.thread_state.contains(&i.operand(0)) => {}
            Opcode::LLVMStore if self.thread_state.contains(&i.operand(1)) => {}
            Opcode::LLVMLoad => self.access(i, i.operand(0), true),
            Opcode::LLVMStore => self.access(i.operand(0), i.operand(1), false),
            Opcode::LLVMGetElementPtr => self.address(i),
            Opcode::LLVMBitCast
            | Opcode::LLVMAddrSpaceCast
            | Opcode::LLVMPtrToInt
            | Opcode::LLVMIntToPtr
            | Opcode::LLVMFreeze => {
                let same = self.tree(i.operand(0)).into_owned();
                self.add(i, &same);
                let back = self.tree(i).into_owned();
                self.add(i.operand(0), &back);
            }
            Opcode::LLVMPHI | Opcode::LLVMSelect => {
                let merged: Vec<Value<'ctx>> = match i.as_phi() {
                    Some(phi) => phi.incoming().into_iter().map(|(v, _)| v).collect(),
                    None => vec![i.operand(1), i.operand(2)],
                };
                for &v in &merged {
                    let t = self.tree(v).into_owned();
                    self.add(i, &t);
                }
                let back = self.tree(i).into_owned();
                for v in merged {
                    self.add(v, &back);
                }
            }
            Opcode::LLVMExtractValue => {
                let agg = i.operand(0);
                if let Some((at, ty)) = self.m.indices_offset(agg.ty(), &i.indices()) {
                    let (at, size) = (at as i64, self.m.size_of(ty) as i64);
                    let part = self.tree(agg).window(at, at + size, &[]);
                    self.add(i, &part);
                    let back = self.tree(i).window(0, size, &[]).shifted(at);
                    self.add(agg, &back);
                }
            }
            Opcode::LLVMInsertValue => {
                let (agg, v) = (i.operand(0), i.operand(1));
                if let Some((at, ty)) = self.m.indices_offset(i.ty(), &i.indices()) {
                    let (at, size) = (at as i64, self.m.size_of(ty) as i64);
                    let whole = self.m.size_of(i.ty()) as i64;
                    let inserted = self.tree(v).window(0, size, &[]).shifted(at);
                    self.add(i, &inserted);
                    let mut rest = self.tree(agg).window(0, at, &[]);
                    rest.merge(&self.tree(agg).window(at + size, whole, &[]).shifted(at + size));
                    self.add(i, &rest);
                    let back = self.tree(i).window(at, at + size, &[]);
                    self.add(v, &back);
                    let mut outside = self.tree(i).window(0, at, &[]);
                    outside.merge(&self.tree(i).window(at + size, whole, &[]).shifted(at + size));
                    self.add(agg, &outside);
                }
            }
            Opcode::LLVMSIToFP | Opcode::LLVMUIToFP => self.add_kind(i.operand(0), Kind::Integer),
            Opcode::LLVMFPToSI | Opcode::LLVMFPToUI => self.add_kind(i, Kind::Integer),
            Opcode::LLVMTrunc | Opcode::LLVMZExt | Opcode::LLVMSExt => {
                self.add_kind(i, Kind::Integer);
                self.add_kind(i.operand(0), Kind::Integer);
            }
            Opcode::LLVMMul
            | Opcode::LLVMUDiv
            | Opcode::LLVMSDiv
            | Opcode::LLVMURem
            | Opcode::LLVMSRem
            | Opcode::LLVMShl
            | Opcode::LLVMLShr
            | Opcode::LLVMAShr
                if i.ty().is_int() =>
            {
                self.add_kind(i, Kind::Integer)
            }
            Opcode::LLVMAdd | Opcode::LLVMSub if i.ty().is_int() => {
                let integer = |v: Value<'ctx>| v.const_int().is_some() || self.tree(v).get(&[0]) == Some(Kind::Integer);
                if integer(i.operand(0)) && integer(i.operand(1)) {
                    self.add_kind(i, Kind::Integer);
                }
            }
            Opcode::LLVMCall => self.call(i),
            _ => {}
        }
    }

    /// `getelementptr`: the memory seen from the new address is the base's, moved by
    /// a constant offset, or (a variable index) its elements only.
    fn address(&mut self, i: Value<'ctx>) {
        let base = i.operand(0);
        for k in 1..i.num_operands() {
            if i.operand(k).const_int().is_none() {
                self.add_kind(i.operand(k), Kind::Integer);
            }
        }
        // A constant offset, or a few: an element of a short array type, such as the
        // stack array of arguments `vcat` walks. (Then only that element is seen through
        // the address: memory beyond it would flow from one element to the next, and on
        // round after round.)
        match self.m.gep_offsets(i, MAX_GEP_OFFSETS) {
            Some((offsets, _)) if offsets.len() == 1 => {
                let c = offsets[0];
                let seen = self.tree(base).pointee().shifted(-c);
                self.add(i, &TypeTree::pointer_to(&seen));
                let back = self.tree(i).pointee().shifted(c);
                self.add(base, &TypeTree::pointer_to(&back));
            }
            Some((offsets, size)) => {
                let size = size as i64;
                for c in offsets {
                    let mut seen = self.tree(base).pointee().window(c, c + size, &[]);
                    seen.merge(&self.tree(base).pointee().elements());
                    self.add(i, &TypeTree::pointer_to(&seen));
                    let mut back = self.tree(i).pointee().window(0, size, &[]).shifted(c);
                    back.merge(&self.tree(i).pointee().elements());
                    self.add(base, &TypeTree::pointer_to(&back));
                }
            }
            None => {
                let seen = self.tree(base).pointee().elements();
                self.add(i, &TypeTree::pointer_to(&seen));
                // `p + k` over elements of one scalar type: what one element holds
                // (at any constant distance from the address), every element holds.
                if i.num_operands() == 2 && !i.gep_source_type().is_aggregate() {
                    let one = self.tree(i).pointee().anywhere();
                    self.add(base, &TypeTree::pointer_to(&one));
                }
            }
        }
    }

    fn call(&mut self, i: Value<'ctx>) {
        // (Only `call` instructions come here: `Opcode::LLVMCall` above.)
        let Some(call) = i.as_call() else { return };
        let callee = call.called_operand();
        let Some(name) = callee_name(callee) else { return };
        let rt = crate::julia::current();
        if name.starts_with("llvm.memcpy") || name.starts_with("llvm.memmove") {
            let (dst, src) = (i.operand(0), i.operand(1));
            let len = i.operand(2).const_int().unwrap_or(MAX_OFFSET);
            let from = self.tree(src).pointee().window(0, len, &[]);
            let mut from_any = from.clone();
            from_any.merge(&self.tree(src).pointee().elements());
            self.add(dst, &TypeTree::pointer_to(&from_any));
            let mut to = self.tree(dst).pointee().window(0, len, &[]);
            to.merge(&self.tree(dst).pointee().elements());
            self.add(src, &TypeTree::pointer_to(&to));
        } else if let Some(kind) = rt.array_call(&name) {
            match kind {
                ArrayCall::Alloc => {
                    // (An array of integers or `Bool`s, as the array type it is handed
                    // says, holds integers: what a struct holding it hands a loop that
                    // replaces the struct, `m = Model(m.w .+ 1, ...)`, loads as such.)
                    let elements = if crate::analysis::memory::integer_array_allocation(i) {
                        TypeTree::scalar(Kind::Integer)
                    } else {
                        TypeTree::default()
                    };
                    self.add(i, &array_object(&elements));
                    for k in 1..call.call_arg_count() {
                        self.add_kind(i.operand(k), Kind::Integer);
                    }
                }
                ArrayCall::Copy => {
                    let same = self.tree(i.operand(0)).into_owned();
                    self.add(i, &same);
                    let back = self.tree(i).into_owned();
                    self.add(i.operand(0), &back);
                }
                ArrayCall::Reshape => {
                    // A new object over argument 1's data.
                    let data = |t: &TypeTree| {
                        let mut d = TypeTree::default();
                        for (p, k) in t.entries() {
                            if p.len() >= 3 && p[0] == 0 && p[1] == 0 {
                                d.insert(p, k);
                            }
                        }
                        d
                    };
                    let mut t = array_object(&TypeTree::default());
                    t.merge(&data(&self.tree(i.operand(1))));
                    self.add(i, &t);
                    let back = data(&self.tree(i));
                    self.add(i.operand(1), &back);
                }
            }
        } else if let Some(boxed) = rt.box_call(&name) {
            let kind = match boxed {
                Boxed::F64 => Kind::F64,
                Boxed::F32 => Kind::F32,
                Boxed::Integer => Kind::Integer,
            };
            self.add(i, &TypeTree::pointer_to(&TypeTree::scalar(kind)));
        } else if let Some(alloc) = rt.gc_alloc(&name) {
            self.add_kind(i, Kind::Pointer);
            if alloc.size_arg < call.call_arg_count() {
                self.add_kind(i.operand(alloc.size_arg), Kind::Integer);
            }
        }
    }
}

/// For each value whose tree an instruction's step reads (the instruction itself and its
/// operands, by `object_key`), the positions in `insts` of those instructions.
fn readers_of<'ctx>(insts: &[Value<'ctx>], objects: &HashMap<u64, Value<'ctx>>) -> HashMap<Value<'ctx>, Vec<usize>> {
    let mut readers: HashMap<Value<'ctx>, Vec<usize>> = HashMap::new();
    for (k, &i) in insts.iter().enumerate() {
        for v in std::iter::once(i).chain(i.operands()) {
            let list = readers.entry(object_key(objects, v)).or_default();
            if list.last() != Some(&k) {
                list.push(k);
            }
        }
    }
    readers
}

/// Pointers that step through memory: phis fed by an address computed from themselves
/// (a loop), and merges of addresses at different constant offsets from one base (the
/// `k`-th field of a tuple after a loop unrolled by LLVM, `phi [p + 8], [p + 16]`).
/// Merged as they are, what the memory holds at one offset would flow, through the
/// merge and back, to the other, and on round after round (the offsets creep by their
/// difference each round and the analysis never converges).
fn strided_pointers<'ctx>(m: &'ctx Module, insts: &[Value<'ctx>]) -> HashSet<Value<'ctx>> {
    let mut strided = stepping_pointers(insts);
    strided.extend(insts.iter().copied().filter(|&i| i.ty().is_pointer() && merges_offsets(m, i)));
    strided
}

/// Whether pointer merge `i` (a phi or a select) merges addresses at two different
/// constant offsets from one base.
fn merges_offsets<'ctx>(m: &'ctx Module, i: Value<'ctx>) -> bool {
    let merged: Vec<Value<'ctx>> = match (i.opcode(), i.as_phi()) {
        (Opcode::LLVMPHI, Some(phi)) => phi.incoming().into_iter().map(|(v, _)| v).collect(),
        (Opcode::LLVMSelect, _) => vec![i.operand(1), i.operand(2)],
        _ => return false,
    };
    let mut seen: HashMap<Value<'ctx>, i64> = HashMap::new();
    for v in merged {
        let Some((base, offset)) = crate::analysis::memory::base_and_offset(m, v) else { continue };
        if seen.insert(base, offset).is_some_and(|o| o != offset) {
            return true;
        }
    }
    false
}

/// Phis fed by an address computed from themselves: pointers stepping through memory in
/// a loop.
fn stepping_pointers<'ctx>(insts: &[Value<'ctx>]) -> HashSet<Value<'ctx>> {
    let derived_from = |mut v: Value<'ctx>, phi: Value<'ctx>| {
        while v.is_instruction()
            && matches!(v.opcode(), Opcode::LLVMGetElementPtr | Opcode::LLVMBitCast | Opcode::LLVMAddrSpaceCast)
        {
            v = v.operand(0);
            if v == phi {
                return true;
            }
        }
        false
    };
    insts
        .iter()
        .copied()
        .filter(|&i| i.ty().is_pointer())
        .filter(|&i| i.as_phi().is_some_and(|phi| phi.incoming().into_iter().any(|(v, _)| derived_from(v, i))))
        .collect()
}

/// The thread pointer (read by an argument-less inline `asm`) and addresses computed
/// or loaded from it.
fn thread_state<'ctx>(insts: &[Value<'ctx>]) -> HashSet<Value<'ctx>> {
    let mut set = HashSet::new();
    for &i in insts {
        let derived = match i.opcode() {
            Opcode::LLVMCall => {
                i.as_call().is_some_and(|c| c.called_operand().is_inline_asm() && c.call_arg_count() == 0)
            }
            Opcode::LLVMGetElementPtr | Opcode::LLVMBitCast | Opcode::LLVMAddrSpaceCast | Opcode::LLVMLoad => {
                set.contains(&i.operand(0))
            }
            _ => false,
        };
        if derived {
            set.insert(i);
        }
    }
    set
}

/// Addresses into GC frames that may reach a slot holding different objects over time:
/// a slot more than one value is stored into, or an address whose slot is not known.
fn reused_slots<'ctx>(m: &'ctx Module, insts: &[Value<'ctx>]) -> HashSet<Value<'ctx>> {
    use crate::analysis::memory::{alloca_slot, is_gc_frame, zero_offset_base};
    let mut addresses = HashSet::new();
    for &i in insts {
        let derived = match i.opcode() {
            Opcode::LLVMAlloca => is_gc_frame(i),
            Opcode::LLVMGetElementPtr | Opcode::LLVMBitCast | Opcode::LLVMAddrSpaceCast => {
                addresses.contains(&i.operand(0))
            }
            _ => false,
        };
        if derived {
            addresses.insert(i);
        }
    }
    let mut stored: HashMap<(Value<'ctx>, u64), HashSet<Value<'ctx>>> = HashMap::new();
    for &i in insts {
        if i.opcode() == Opcode::LLVMStore && addresses.contains(&i.operand(1)) {
            if let Some(slot) = alloca_slot(m, i.operand(1)) {
                stored.entry(slot).or_default().insert(zero_offset_base(i.operand(0)));
            }
        }
    }
    addresses.retain(|&p| alloca_slot(m, p).is_none_or(|slot| stored.get(&slot).is_some_and(|v| v.len() > 1)));
    addresses
}

impl<'ctx> Types<'ctx> {
    /// The trees of `f`'s values, from `seeds` (what the arguments hold).
    pub fn compute(m: &'ctx Module, f: Function<'ctx>, seeds: &[(Value<'ctx>, TypeTree)]) -> Types<'ctx> {
        let insts: Vec<Value<'ctx>> = f.blocks().into_iter().flat_map(|b| b.instructions()).collect();
        let mut prop = Propagation {
            m,
            trees: HashMap::new(),
            strided: strided_pointers(m, &insts),
            thread_state: thread_state(&insts),
            reused_slots: reused_slots(m, &insts),
            objects: embedded_objects(&insts),
            changed: false,
            grown: Vec::new(),
            overflow: false,
        };
        for p in f.params() {
            let facts = prop.type_facts(p.ty());
            prop.add(p, &facts);
        }
        for (v, t) in seeds {
            prop.add(*v, t);
        }
        for &i in &insts {
            let facts = prop.type_facts(i.ty());
            prop.add(i, &facts);
        }
        // Rounds over the instructions in order, as if each stepped in every round, but
        // an instruction steps only when a tree it reads (its own, its operands') grew
        // since it last stepped: otherwise its step would add only what it added
        // before, and the trees would not change. So the result, the rounds and the
        // fixed point are those of stepping every instruction every round.
        let readers = readers_of(&insts, &prop.objects);
        let mut dirty = vec![true; insts.len()];
        let mut converged = false;
        'rounds: for _ in 0..MAX_ROUNDS {
            prop.changed = false;
            for (k, &i) in insts.iter().enumerate() {
                if !std::mem::take(&mut dirty[k]) {
                    continue;
                }
                prop.grown.clear();
                prop.step(i);
                if prop.overflow {
                    break 'rounds;
                }
                for v in prop.grown.drain(..) {
                    for &j in readers.get(&v).into_iter().flatten() {
                        dirty[j] = true;
                    }
                }
            }
            if !prop.changed {
                converged = true;
                break;
            }
        }
        Types { trees: prop.trees, objects: prop.objects, converged }
    }

    /// What `v` holds, as far as known.
    pub fn tree(&self, v: Value<'ctx>) -> Option<&TypeTree> {
        self.trees.get(&object_key(&self.objects, v)).filter(|_| self.converged)
    }

    /// The float type of the elements of array object `a`, when they are known to hold
    /// floats of that type and nothing else: no pointer, no conflict, no other float.
    pub fn float_elements(&self, a: Value<'ctx>) -> Option<Leaf> {
        let t = self.tree(a)?;
        let mut kinds = t.entries().filter(|(p, _)| p.len() >= 3 && p[0] == 0 && p[1] == 0).map(|(_, k)| k);
        let first = kinds.next()?;
        if !kinds.all(|k| k == first) {
            return None;
        }
        match first {
            Kind::F64 => Some(Leaf::ArrayF64),
            Kind::F32 => Some(Leaf::ArrayF32),
            _ => None,
        }
    }

    /// Text printer for tests and bug reports: the arguments, then every instruction
    /// with a non-empty tree, in order.
    pub fn print(&self, f: Function<'ctx>) -> String {
        let mut out = String::new();
        if !self.converged {
            out.push_str("(did not converge: nothing is known)\n");
        }
        let line = |out: &mut String, v: Value<'ctx>| {
            if let Some(t) = self.trees.get(&v).filter(|t| !t.is_empty()) {
                let text = v.print();
                let text = text.trim();
                let text = text.split(", !").next().unwrap_or(text);
                let _ = writeln!(out, "{text}\n    {t}");
            }
        };
        for p in f.params() {
            line(&mut out, p);
        }
        for b in f.blocks() {
            for i in b.instructions() {
                line(&mut out, i);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::{Types, ANY};
    use crate::llvm::{Context, OwnedModule};

    /// A pointer merging two fields of one tuple (`t[2]` or `t[3]`, LLVM's unrolled loop
    /// over a tuple of row lengths in `hvcat`): before it was taken for a stepping
    /// pointer, the kinds flowed through the merge from one offset to the other and back,
    /// eight bytes further each round, and the analysis gave up (nothing known), which
    /// refused a `Dict` beside a 3×2 matrix literal.
    #[test]
    fn a_merge_of_two_fields_converges() {
        let ir = r#"
define i64 @f(i1 %c) {
entry:
  %t = alloca [3 x i64], align 8
  store i64 2, ptr %t, align 8
  %a = getelementptr inbounds i8, ptr %t, i64 8
  store i64 2, ptr %a, align 8
  %b = getelementptr inbounds i8, ptr %t, i64 16
  store i64 2, ptr %b, align 8
  br i1 %c, label %l, label %r
l:
  %p8 = getelementptr inbounds i8, ptr %t, i64 8
  br label %j
r:
  %p16 = getelementptr inbounds i8, ptr %t, i64 16
  br label %j
j:
  %p = phi ptr [ %p8, %l ], [ %p16, %r ]
  %v = load i64, ptr %p, align 8
  %w = getelementptr inbounds i64, ptr %t, i64 %v
  %x = load i64, ptr %w, align 8
  ret i64 %x
}
"#;
        let ctx = Context::create();
        let m = OwnedModule::parse_ir(&ctx, ir).unwrap();
        let f = m.function("f").unwrap();
        let types = Types::compute(&m, f, &[]);
        assert!(types.converged, "{}", types.print(f));
        let phi = f.blocks()[3].instructions()[0];
        let tree = types.tree(phi).unwrap();
        assert!(tree.entries().all(|(p, _)| p.len() < 2 || p[1] == ANY), "{tree}");
        assert!(tree.entries().any(|(p, k)| p[..] == [0, ANY] && k == super::Kind::Integer), "{tree}");
    }
}
