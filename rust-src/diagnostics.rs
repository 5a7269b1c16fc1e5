//! Runtime diagnostics: derivatives that are lost only on some inputs. Compile-time
//! analysis cannot reject these functions (the lossy path is taken on rare inputs), so
//! the derivative code records, on the path where the loss happens, a status code that
//! makes Julia raise `DifferentiationError` instead of returning a wrong value:
//!
//! - **integer arithmetic on float bits**: Julia's `sin`/`cos` reduce huge arguments
//!   (|x| ≳ 1.6e6) with Payne–Hanek in 128-bit integers; a float rebuilt from
//!   integers that did arithmetic on an active float's mantissa carries no derivative;
//! - **tabulated special points**: `exp(x)` returns the constant `e` when `x == 1.0`; a
//!   constant chosen by an equality test on an active value has a derivative the IR
//!   does not contain.
//!
//! - **calls without a rule reached with differentiated arrays**: BLAS behind `A * x`
//!   (Julia takes generic code for 2×2 and 3×3 matrices, BLAS beyond).
//!
//! The pass inserts calls to the marker `ox.diagnostic(i1 cond, i32 code)`; `lower`
//! turns them into updates of the derivative's status slot, which it returns.

use crate::analysis::activity::Activity;
use crate::analysis::cfg::Cfg;
use crate::analysis::memory::Memory;
use crate::error::Result;
use crate::llvm::{Built, Function, Module, Opcode, RealPredicate, Type, Value};
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::ffi::CString;

const MARKER: &str = "ox.diagnostic";
/// Status codes of diagnostics start here (lower codes are the ABI's own).
pub const FIRST_CODE: i32 = crate::codes::OX_STATUS_DIAGNOSTIC;

static MESSAGES: Mutex<Vec<CString>> = Mutex::new(Vec::new());

fn register(msg: String) -> i32 {
    let mut all = MESSAGES.lock();
    all.push(CString::new(msg.replace('\0', " ")).expect("NUL removed"));
    FIRST_CODE + all.len() as i32 - 1
}

/// What a diagnostic code this process never issued means: the header promises every
/// code from `FIRST_CODE` on a message, and a caller that gets NULL cannot tell an
/// unknown code from an engine failure.
const UNRECORDED: &std::ffi::CStr = c"the derivative was not available at its input, but no message was recorded for this diagnostic code: the engine in this process never issued it (a status from another process, or an overwritten one)";

/// The message of a diagnostic status code (`UNRECORDED` for one never issued); null for
/// codes below `FIRST_CODE`, which are not diagnostics. The string lives as long as the
/// process.
pub fn message(code: i32) -> *const libc::c_char {
    let Some(index) = code.checked_sub(FIRST_CODE).and_then(|i| usize::try_from(i).ok()) else {
        return std::ptr::null();
    };
    match MESSAGES.lock().get(index) {
        // The CString's heap buffer never moves or drops: entries are only appended.
        Some(c) => c.as_ptr(),
        None => UNRECORDED.as_ptr(),
    }
}

/// How an integer relates to the bits of an active float.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Bits {
    /// Unrelated, or piecewise constant in the float (its exponent, its sign, `fptosi`).
    Constantish,
    /// The float's bit pattern, possibly masked: turning it back into a float is a
    /// reinterpretation or a truncation (`crate::reinterpret`).
    Pattern,
    /// Arithmetic on the float's mantissa bits: a float rebuilt from it has lost the
    /// derivative.
    Mixed,
}

fn mantissa_mask(width: u32) -> u64 {
    match width {
        64 => (1u64 << 52) - 1,
        32 => (1u64 << 23) - 1,
        _ => u64::MAX,
    }
}

/// Bit width of a scalar integer type; 0 for a vector, whose lanes are no one float's
/// bits (`mantissa_mask` is then all bits, the conservative answer).
fn scalar_int_width(ty: Type) -> u32 {
    if ty.is_int() {
        ty.int_width()
    } else {
        0
    }
}

fn classify<'ctx>(
    i: Value<'ctx>,
    act: &Activity<'ctx>,
    class: &HashMap<Value<'ctx>, Bits>,
    arrays: &FloatArrays<'_, 'ctx>,
) -> Bits {
    use Opcode::*;
    let of = |v: Value| class.get(&v).copied().unwrap_or(Bits::Constantish);
    let operands_max = || i.operands().into_iter().map(of).max().unwrap_or(Bits::Constantish);
    match i.opcode() {
        LLVMBitCast if i.ty().is_int() && act.is_varied(i.operand(0)) => Bits::Pattern,
        LLVMLoad if arrays.element_bits(i) => Bits::Pattern,
        LLVMFPToSI | LLVMFPToUI => Bits::Constantish,
        LLVMICmp => Bits::Constantish,
        LLVMLShr | LLVMAShr => {
            let width = scalar_int_width(i.ty());
            let shift = i.operand(1).const_uint().unwrap_or(0);
            let mant_bits = 64 - mantissa_mask(width).leading_zeros() as u64;
            match of(i.operand(0)) {
                Bits::Pattern if shift >= mant_bits => Bits::Constantish,
                Bits::Pattern => Bits::Mixed,
                c => c,
            }
        }
        LLVMAnd | LLVMOr | LLVMXor => {
            let width = scalar_int_width(i.ty());
            let mask = i.operand(1).const_uint().or_else(|| i.operand(0).const_uint());
            match (i.opcode(), mask) {
                (LLVMAnd, Some(m)) if m & mantissa_mask(width) == 0 => Bits::Constantish,
                _ => operands_max(),
            }
        }
        LLVMPHI => {
            i.as_phi().and_then(|phi| phi.incoming().into_iter().map(|(v, _)| of(v)).max()).unwrap_or(Bits::Constantish)
        }
        LLVMSelect => of(i.operand(1)).max(of(i.operand(2))),
        LLVMCall | LLVMLoad | LLVMStore => Bits::Constantish,
        _ if i.ty().is_int() || i.ty().kind() == llvm_sys::LLVMTypeKind::LLVMVectorTypeKind => match operands_max() {
            Bits::Pattern => Bits::Mixed,
            c => c,
        },
        _ => Bits::Constantish,
    }
}

fn describe(user: &str, inst: Value, what: &str) -> String {
    format!("cannot differentiate `{user}` at this argument: {what}{}", crate::names::where_(inst))
}

/// The Julia function's arguments, as the derivative function sees them.
pub struct Arguments<'a, 'ctx> {
    /// Every argument's value.
    pub values: &'a [Value<'ctx>],
    /// The differentiated arrays of floats alone (their objects), with the floats'
    /// width: every element is a float (`request::ArgSpec::float_array_width`).
    pub float_arrays: &'a [(Value<'ctx>, u32)],
}

/// The differentiated arrays of floats alone, and the memory analysis that tells which
/// array an address points into.
struct FloatArrays<'a, 'ctx> {
    arrays: &'a [(Value<'ctx>, u32)],
    mem: &'a Memory<'ctx>,
}

/// Inserts diagnostic markers into the derivative function `g`; returns how many.
pub fn insert<'ctx>(
    m: &Module,
    g: Function<'ctx>,
    act: &Activity<'ctx>,
    mem: &Memory<'ctx>,
    user: &str,
    args: &Arguments<'_, 'ctx>,
) -> Built<usize> {
    let arrays = FloatArrays { arrays: args.float_arrays, mem };
    let cfg = Cfg::compute(g);
    let live = cfg.reaches_return();
    let order = cfg.reverse_postorder();
    let insts: Vec<Value> = order.iter().flat_map(|&b| cfg.blocks[b].instructions()).collect();

    let mut class: HashMap<Value, Bits> = HashMap::new();
    let mut changed = true;
    while changed {
        changed = false;
        for &i in &insts {
            let c = classify(i, act, &class, &arrays);
            if c != Bits::Constantish && class.get(&i) != Some(&c) {
                class.insert(i, c);
                changed = true;
            }
        }
    }

    let definite = definitely_bits(&insts, &class, args.values, &arrays);

    let i1 = m.int(1);
    let marker = m.get_or_declare(MARKER, m.fn_type(m.void(), &[i1, m.int(32)]));
    let b = m.builder();
    let mut count = 0;
    let always = m.const_int(i1, 1);
    for &i in &insts {
        if !live[cfg.index(i.parent_block())] {
            continue;
        }
        // A float made of a float's bits is refused where it meets active data, as a
        // bitcast is; an integer that may be an `Int` moved in a union's register only
        // where it merges into active data (`reaches_active_merge`).
        let (lossy, bits) = match i.opcode() {
            Opcode::LLVMSIToFP | Opcode::LLVMUIToFP => {
                (class.contains_key(&i.operand(0)), definite.contains(&i.operand(0)))
            }
            // (`crate::reinterpret` follows the float a rebuild keeps, through a
            // subnormal's normalization, which is arithmetic on the bits, too.)
            Opcode::LLVMBitCast if i.ty().is_floating() && !reinterpreted(i) => {
                let lossy = match class.get(&i.operand(0)) {
                    Some(Bits::Mixed) => true,
                    // A float's bits, masked, that `crate::reinterpret` found no way to
                    // follow: only a truncation is piecewise constant.
                    Some(Bits::Pattern) => !truncation(i.operand(0)) && guarded_mask(i).is_none(),
                    _ => false,
                };
                (lossy, true)
            }
            _ => (false, false),
        };
        // A truncation by a mask known only at run time (`reinterpret::
        // guard_variable_truncations`): refused where the mask is not ones then zeros.
        if let Some(mask) = guarded_mask(i).filter(|_| class.get(&i.operand(0)) == Some(&Bits::Pattern)) {
            if reaches_active_merge(i, act, bits) {
                let what = "its value is computed from the bits of a float masked by a mask that keeps its low bits \
                            and clears higher ones (not a truncation: `reinterpret(UInt64, x) & (typemax(UInt64) >> k)`), \
                            which carries no derivative";
                let code = register(describe(user, i, what));
                b.after(i)?;
                let ones = m.const_int(mask.ty(), u64::MAX);
                let cleared = b.xor(mask, ones)?;
                // (Ones then zeros: the bits it clears are a low run, `c & (c + 1) == 0`.)
                let run = b.and(cleared, b.add(cleared, m.const_int(mask.ty(), 1))?)?;
                let other = b.icmp(crate::llvm::ICMP_NE, run, m.const_int(mask.ty(), 0))?;
                b.call(marker, &[other, m.const_int(m.int(32), code as u64)])?;
                count += 1;
            }
            continue;
        }
        if lossy && reaches_active_merge(i, act, bits) {
            let what = if i.opcode() == Opcode::LLVMBitCast {
                "its value is computed with integer arithmetic on the bits of a float, which carries no derivative"
            } else {
                "it reads the bits of a float as an integer number (`Float64(reinterpret(Int, x))`), which carries no derivative"
            };
            let code = register(describe(user, i, what));
            b.after(i)?;
            b.call(marker, &[always, m.const_int(m.int(32), code as u64)])?;
            count += 1;
        }
    }
    count += insert_special_points(m, &cfg, &live, act, user, marker)?;
    count += insert_rebuilt_equalities(m, &insts, &live, &cfg, act, user, marker)?;
    // A construct refused where it is reached stops the derivative there when the caller
    // has a stop hook (its shadows may not exist: going on could read through null ones).
    let stop = crate::runtime::hooks::stop().map(|a| (m.fn_type(m.void(), &[m.int(32)]), m.const_address(a)));
    for (call, message) in &act.unsupported_when_reached {
        let code = m.const_int(m.int(32), register(message.clone()) as u64);
        b.before(*call)?;
        b.call(marker, &[always, code])?;
        if let Some((fty, hook)) = stop {
            b.call_typed(fty, hook, &[code])?;
        }
        count += 1;
    }
    Ok(count)
}

/// The integers (of `class`) that are a float's bits, or arithmetic on them, on every
/// path: made from a bitcast of a float that is an argument or computed as one
/// (`computed_float`), without a merge on the way, where a union of a float and an `Int`
/// in one register (a phi or select of the float's bits and an integer) would be one. A
/// phi or select is one only when all it merges is.
fn definitely_bits<'ctx>(
    insts: &[Value<'ctx>],
    class: &HashMap<Value<'ctx>, Bits>,
    arguments: &[Value<'ctx>],
    arrays: &FloatArrays<'_, 'ctx>,
) -> HashSet<Value<'ctx>> {
    let mut definite: HashSet<Value> = HashSet::new();
    let mut changed = true;
    while changed {
        changed = false;
        for &i in insts {
            if definite.contains(&i) || !class.contains_key(&i) {
                continue;
            }
            let is = match i.opcode() {
                // (`classify` took it for an element of a differentiated array.)
                Opcode::LLVMLoad => true,
                // (A load `memory::retype_bit_copies` made a float's may be an integer's
                // bits, but not one from a differentiated array of floats.)
                Opcode::LLVMBitCast if i.name().starts_with(crate::analysis::memory::RETYPED_BITS) => {
                    arrays.element_bits(i.operand(0))
                }
                Opcode::LLVMBitCast => computed_float(i.operand(0), arguments),
                Opcode::LLVMPHI => {
                    i.as_phi().is_some_and(|phi| phi.incoming().into_iter().all(|(v, _)| definite.contains(&v)))
                }
                Opcode::LLVMSelect => definite.contains(&i.operand(1)) && definite.contains(&i.operand(2)),
                _ => i.operands().into_iter().any(|o| definite.contains(&o)),
            };
            if is {
                definite.insert(i);
                changed = true;
            }
        }
    }
    definite
}

impl<'ctx> FloatArrays<'_, 'ctx> {
    /// Whether load `i` reads an element of one of the arrays, as a float or as an
    /// integer of the floats' width: the float's bits (LLVM reads an element that way
    /// when the code uses only its bits, `reinterpret(Int, x[1])`). Only an address into
    /// that argument's data on every path (`Memory::data_pointer_under`), where an
    /// integer array's data could be another.
    fn element_bits(&self, i: Value<'ctx>) -> bool {
        if !i.is_instruction() || i.opcode() != Opcode::LLVMLoad {
            return false;
        }
        let width = match i.ty().float_bits() {
            0 if i.ty().is_int() => i.ty().int_width(),
            bits => bits,
        };
        let Some((object, _)) = self.mem.data_pointer_under(i.operand(0)) else { return false };
        let base = crate::analysis::memory::zero_offset_base;
        self.arrays.iter().any(|&(a, w)| base(a) == object && w == width)
    }
}

/// Whether `v` is a float on every path: one of the function's `arguments` (a float
/// argument is Julia's `Float64` or `Float32`), the result of float arithmetic or of a
/// conversion to float, or a load of a float as Julia's code reads one. (Not the float
/// loads `memory::retype_bit_copies` made of integer ones, whose bits are named
/// `RETYPED_BITS`: the type analysis takes for floats integers a union moves where a
/// float may be, `vcat(x, [1, 2])`; `definitely_bits` takes those only from a
/// differentiated array of floats.)
fn computed_float<'ctx>(v: Value<'ctx>, arguments: &[Value<'ctx>]) -> bool {
    use Opcode::*;
    arguments.contains(&v)
        || (v.is_instruction()
            && matches!(
                v.opcode(),
                LLVMLoad
                    | LLVMFAdd
                    | LLVMFSub
                    | LLVMFMul
                    | LLVMFDiv
                    | LLVMFRem
                    | LLVMFNeg
                    | LLVMFPTrunc
                    | LLVMFPExt
                    | LLVMSIToFP
                    | LLVMUIToFP
            ))
}

/// Whether float `y` rebuilt from bits is `crate::reinterpret`'s: the first operand of its
/// marker `ox.reinterpret(y, x)`, which carries the derivative.
fn reinterpreted(y: Value) -> bool {
    y.users().into_iter().any(|u| {
        u.called_operand_if_call().is_some_and(|c| c.name().starts_with("ox.reinterpret.")) && u.operand(0) == y
    })
}

/// The mask of float `y`, its bits masked by a mask known only at run time, when its
/// every use is the guard `reinterpret::guard_variable_truncations` put on it.
fn guarded_mask<'ctx>(y: Value<'ctx>) -> Option<Value<'ctx>> {
    let (_, mask) = crate::reinterpret::variable_mask(y)?;
    let users = y.users();
    (!users.is_empty() && users.iter().all(|&u| crate::reinterpret::truncation_guard(u, y))).then_some(mask)
}

/// Whether `bits` is a float's bits with its low mantissa bits cleared: `and` with a
/// constant that clears a run of the mantissa's lowest bits, or all of them (a Dekker
/// split's high part; the sign, the exponent, 2ᵉ), whatever it does to sign and
/// exponent: a step function of the float, whose derivative is zero.
fn truncation(bits: Value) -> bool {
    if !bits.is_instruction() || bits.opcode() != Opcode::LLVMAnd {
        return false;
    }
    let mant = mantissa_mask(scalar_int_width(bits.ty()));
    let Some(mask) = bits.operand(1).const_uint().or_else(|| bits.operand(0).const_uint()) else { return false };
    let cleared = !mask & mant;
    cleared != 0 && (cleared & (cleared + 1)) == 0
}

/// Whether the float rebuilt at `lossy` reaches an active value. A float rebuilt from a
/// float's bits (`bits`: a bitcast, or an integer conversion of what is a float's bits
/// on every path, `definitely_bits`) does when it is combined with active data into a
/// value whose derivative is needed, merges
/// into an active phi or select, is stored into shadowed memory, or is returned: its
/// derivative is missing from that value (`x * rebuilt(x)` lost the rebuilt factor's,
/// silently, when being combined with active data was taken for a Newton step refining
/// an integer-made guess, as `cbrt`'s body does; `cbrt` and Base's other functions of
/// that kind are kept calls with rules; `Float64(reinterpret(Int, x)) * x` lost its
/// first factor's the same way). Any other integer converted to a float (`sitofp`) may
/// hold a float's bits or be an integer moved in the same register (a union of a float
/// and an `Int`, as mixed matrix literals pick their elements): it is flagged only when
/// it merges, still inactive, into an active phi or select, or is returned.
fn reaches_active_merge(lossy: Value, act: &Activity, bits: bool) -> bool {
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![lossy];
    while let Some(v) = stack.pop() {
        if !seen.insert(v) {
            continue;
        }
        for u in v.users() {
            if !u.is_instruction() {
                continue;
            }
            match u.opcode() {
                Opcode::LLVMRet => return true,
                Opcode::LLVMPHI | Opcode::LLVMSelect if act.is_active(u) => return true,
                _ if bits && act.is_active(u) && u.ty().is_floating() => return true,
                // Stored into shadowed memory, where the shadow gets no derivative.
                Opcode::LLVMStore if bits && u.operand(0) == v && matches!(act.rule(u), crate::rules::Rule::Store) => {
                    return true
                }
                _ if act.is_varied(u) => {}
                _ if u.ty().is_floating() => stack.push(u),
                _ => {}
            }
        }
    }
    false
}

/// An equality test of an active value against a constant inside a branch condition.
struct EqualityTest<'ctx> {
    /// The `fcmp`.
    fcmp: Value<'ctx>,
    /// The `fcmp` is false when the values are equal (`une`, `one`).
    negated: bool,
    /// When the values are equal, the condition is true.
    cond_true_when_equal: bool,
}

/// Finds every `fcmp oeq x, C` in `c` that makes the condition take the same value when
/// it holds, directly or under `or`/`and` (`!isfinite(x) || iszero(x)`, as `cbrt`
/// tests; `(arx == 0) | (arx == 1)`, as `sinpi` does: each one is a special point),
/// with `x` active.
fn equality_tests<'ctx>(c: Value<'ctx>, act: &Activity<'ctx>) -> Vec<EqualityTest<'ctx>> {
    use RealPredicate::*;
    if !c.is_instruction() {
        return Vec::new();
    }
    match c.opcode() {
        Opcode::LLVMFCmp => {
            let (x, k) = (c.operand(0), c.operand(1));
            if !act.is_varied(x) || k.const_real().is_none() {
                return Vec::new();
            }
            let negated = match c.real_predicate() {
                LLVMRealOEQ | LLVMRealUEQ => false,
                LLVMRealUNE | LLVMRealONE => true,
                _ => return Vec::new(),
            };
            vec![EqualityTest { fcmp: c, negated, cond_true_when_equal: !negated }]
        }
        // `a | b` is true when `a` is; `a & b` is false when `a` is.
        Opcode::LLVMOr | Opcode::LLVMAnd if c.ty().is_int() && c.ty().int_width() == 1 => {
            let want = c.opcode() == Opcode::LLVMOr;
            [c.operand(0), c.operand(1)]
                .into_iter()
                .flat_map(|o| equality_tests(o, act))
                .filter(|t| t.cond_true_when_equal == want)
                .collect()
        }
        _ => Vec::new(),
    }
}

impl<'ctx> EqualityTest<'ctx> {
    /// Builds the i1 that is true exactly when the tested values are equal.
    fn flag(&self, b: &crate::llvm::Builder<'ctx>) -> Built<Value<'ctx>> {
        if self.negated {
            b.xor_true(self.fcmp)
        } else {
            Ok(self.fcmp)
        }
    }
    fn tested(&self) -> Value<'ctx> {
        self.fcmp.operand(0)
    }
}

/// A result chosen at a special point: a constant, the tested value itself
/// (`iszero(x) && return x`, as `cbrt` does), or any value that does not depend on the
/// active inputs (`x == 1 && return atan(y)`, as `atan(y, x)` does).
fn special_value(v: Value, test: &EqualityTest, act: &Activity) -> bool {
    v.is_constant() || v == test.tested() || !act.is_varied(v)
}

fn insert_special_points(
    m: &Module,
    cfg: &Cfg,
    live: &[bool],
    act: &Activity,
    user: &str,
    marker: Function,
) -> Built<usize> {
    let b = m.builder();
    let mut count = 0;
    // Before `at`: flag the run when the tested values are equal.
    let mark = |b: &crate::llvm::Builder, at: Value, t: &EqualityTest| {
        let k = t.fcmp.operand(1).const_real().unwrap_or(f64::NAN);
        let code = register(describe(
            user,
            t.fcmp,
            &format!(
                "its implementation returns a special-cased value when an argument equals {k:?}, so the derivative there is not in the code; evaluate at a nearby point"
            ),
        ));
        b.before(at)?;
        let flag = t.flag(b)?;
        b.call(marker, &[flag, m.const_int(m.int(32), code as u64)])?;
        Ok(())
    };
    for (bi, bb) in cfg.blocks.iter().enumerate() {
        if !live[bi] {
            continue;
        }
        for phi in bb.instructions().into_iter().filter_map(|i| i.as_phi()) {
            if !act.is_active(phi.as_value()) {
                continue;
            }
            for (v, pred) in phi.incoming() {
                // The conditional branch the value's path starts at: the predecessor's,
                // or up a chain of blocks entered only from the one before (where
                // `atan(y, x)` computes `atan(y)` when `x == 1`).
                let (mut from, mut into) = (cfg.index(pred), *bb);
                let mut t = pred.terminator();
                for _ in 0..4 {
                    match t {
                        Some(tt) if tt.opcode() == Opcode::LLVMBr && tt.num_operands() == 1 => {
                            let [p] = cfg.preds[from][..] else { break };
                            into = cfg.blocks[from];
                            from = p;
                            t = cfg.blocks[p].terminator();
                        }
                        _ => break,
                    }
                }
                let Some(t) = t else { continue };
                if t.opcode() != Opcode::LLVMBr || t.num_operands() != 3 {
                    continue;
                }
                for test in equality_tests(t.operand(0), act) {
                    // Operands of a conditional br: cond, false dest, true dest.
                    let dest = t.operand(if test.cond_true_when_equal { 2 } else { 1 });
                    if dest.as_block() != into || !special_value(v, &test, act) {
                        continue;
                    }
                    mark(&b, t, &test)?;
                    count += 1;
                }
            }
        }
        for sel in bb.instructions().into_iter().filter(|i| i.opcode() == Opcode::LLVMSelect) {
            if !act.is_active(sel) {
                continue;
            }
            for test in equality_tests(sel.operand(0), act) {
                let chosen_when_equal = sel.operand(if test.cond_true_when_equal { 1 } else { 2 });
                if !special_value(chosen_when_equal, &test, act) {
                    continue;
                }
                mark(&b, sel, &test)?;
                count += 1;
            }
        }
    }
    Ok(count)
}

/// Whether float `y` is rebuilt from an integer that an active float was converted to
/// (`fptosi`, `fptoui`, after rounding or not), through arithmetic, conversions and
/// merges, within a few steps: `T(round(Int, d * x) / d)`, as Base's `rat` and float
/// ranges compute it.
fn rebuilt_from_integer(y: Value, act: &Activity) -> bool {
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![(y, 0u32)];
    while let Some((v, depth)) = stack.pop() {
        if !v.is_instruction() || depth > 12 || !seen.insert(v) {
            continue;
        }
        if matches!(v.opcode(), Opcode::LLVMFPToSI | Opcode::LLVMFPToUI) {
            // (`round(Int, x)` rounds first: `fptosi(rint(x))`.)
            let x = v.operand(0);
            let rounded = x.as_call().filter(|c| {
                c.called_function().is_some_and(|f| {
                    let name = f.name();
                    [
                        "llvm.rint.",
                        "llvm.round.",
                        "llvm.floor.",
                        "llvm.ceil.",
                        "llvm.trunc.",
                        "llvm.nearbyint.",
                        "llvm.roundeven.",
                    ]
                    .iter()
                    .any(|k| name.starts_with(k))
                })
            });
            if act.is_varied(x) || rounded.is_some_and(|c| act.is_varied(c.as_value().operand(0))) {
                return true;
            }
        }
        // (Not through memory or calls: what is found is a value computed in registers.)
        if matches!(v.opcode(), Opcode::LLVMLoad | Opcode::LLVMCall | Opcode::LLVMAlloca) {
            continue;
        }
        stack.extend(v.operands().into_iter().filter(|o| !o.ty().is_pointer()).map(|o| (o, depth + 1)));
    }
    false
}

/// An equality test of an active float `x` against a value rebuilt from an integer `x`
/// (or another active float) was converted to: the code checks whether `x` is exactly
/// a small rational, and when it is, goes on with integers, whose derivative is zero
/// (`range(a, b; length = n)`, `a:s:b` and `range(a; step = s, length = n)` with
/// float endpoints take that path at `0.5`, `1.3`...: Base's `rat`). The function's value
/// is the same on either path, its derivative is not: the run is flagged when the test
/// finds them equal. (Elsewhere such a range is refused when compiled; `LinRange`
/// computes its elements in floats and differentiates.)
fn insert_rebuilt_equalities(
    m: &Module,
    insts: &[Value],
    live: &[bool],
    cfg: &Cfg,
    act: &Activity,
    user: &str,
    marker: Function,
) -> Built<usize> {
    let b = m.builder();
    let mut count = 0;
    for &c in insts {
        if c.opcode() != Opcode::LLVMFCmp || !live[cfg.index(c.parent_block())] {
            continue;
        }
        use RealPredicate::*;
        let negated = match c.real_predicate() {
            LLVMRealOEQ | LLVMRealUEQ => false,
            LLVMRealUNE | LLVMRealONE => true,
            _ => continue,
        };
        let (a, z) = (c.operand(0), c.operand(1));
        let rebuilt = |x: Value, y: Value| {
            act.is_varied(x) && !act.is_varied(y) && !y.is_constant() && rebuilt_from_integer(y, act)
        };
        if !(rebuilt(a, z) || rebuilt(z, a)) {
            continue;
        }
        let code = register(describe(
            user,
            c,
            "its implementation tests whether an argument is exactly a value rebuilt from integers \
             (a small rational, as `range` and `a:s:b` of floats do), and computes with integers \
             when it is, which carries no derivative; use `LinRange(a, b, n)`, or evaluate at a nearby point",
        ));
        b.after(c)?;
        let equal = if negated { b.xor_true(c)? } else { c };
        b.call(marker, &[equal, m.const_int(m.int(32), code as u64)])?;
        count += 1;
    }
    Ok(count)
}

/// At `b`: the derivative reports `message` when `cond` holds as it runs (a marker,
/// which `lower` turns into the entry's status). A callee's derivative function
/// (`in_entry` false) has no status of its own: it notes the refusal on its thread
/// (`runtime::note_callee_refusal`), which the entry takes as its status when it
/// returns (`lower`).
pub fn refuse_when(b: &crate::llvm::Builder, in_entry: bool, cond: Value, message: &str) -> Result<()> {
    let m = b.m;
    let code = register(message.to_string());
    if !in_entry {
        let note = crate::runtime::note_callee_refusal as *const () as usize;
        let fty = m.fn_type(m.void(), &[m.int(8), m.int(32)]);
        let refused = b.cast(Opcode::LLVMZExt, cond, m.int(8))?;
        b.call_typed(fty, m.const_address(note), &[refused, m.const_int(m.int(32), code as u64)])?;
        return Ok(());
    }
    let marker = m.get_or_declare(MARKER, m.fn_type(m.void(), &[m.int(1), m.int(32)]));
    b.call(marker, &[cond, m.const_int(m.int(32), code as u64)])?;
    Ok(())
}

/// Whether a function of `m` notes refusals for its entry (`refuse_when` in a callee).
fn notes_callee_refusals(m: &Module) -> bool {
    let note = crate::runtime::note_callee_refusal as *const () as usize;
    m.functions()
        .into_iter()
        .flat_map(|g| g.blocks())
        .flat_map(|bb| bb.instructions())
        .any(|i| i.called_operand_if_call().and_then(crate::llvm::const_address).is_some_and(|a| a as usize == note))
}

/// Replaces the markers in `g` by updates of a status slot and makes every `ret` of `g`
/// return that status.
pub fn lower(m: &Module, g: Function, entry_builder: &crate::llvm::Builder) -> Built<()> {
    let i32t = m.int(32);
    let calls: Vec<Value> = g
        .blocks()
        .into_iter()
        .flat_map(|bb| bb.instructions())
        .filter(|i| {
            i.opcode() == Opcode::LLVMCall
                && i.as_call().and_then(|c| c.called_function()).is_some_and(|f| f.name() == MARKER)
        })
        .collect();
    let from_callees = notes_callee_refusals(m);
    if calls.is_empty() && !from_callees {
        return Ok(());
    }
    let slot = entry_builder.alloca(i32t, "ox.status")?;
    entry_builder.store(m.const_int(i32t, 0), slot)?;
    let take = crate::runtime::take_callee_refusal as *const () as usize;
    let take_fty = m.fn_type(i32t, &[]);
    if from_callees {
        // (A call that threw may have left one: not this call's.)
        entry_builder.call_typed(take_fty, m.const_address(take), &[])?;
    }
    // (Volatile where a `try` may `longjmp` back: kept in a register, the status a
    // marker in the body set would be lost when the `catch` runs.)
    let volatile = g.blocks().into_iter().flat_map(|bb| bb.instructions()).any(crate::analysis::cfg::is_setjmp_call);
    let b = m.builder();
    for c in calls {
        b.before(c)?;
        let old = b.load(i32t, slot)?;
        let new = b.store(b.select(c.operand(0), c.operand(1), old)?, slot)?;
        if volatile {
            old.set_volatile();
            new.set_volatile();
        }
        c.erase();
    }
    for bb in g.blocks() {
        if let Some(t) = bb.terminator().filter(|t| t.opcode() == Opcode::LLVMRet) {
            b.before(t)?;
            let mut status = b.load(i32t, slot)?;
            if volatile {
                status.set_volatile();
            }
            // (The entry's own refusal first, else its callees'.)
            if from_callees {
                let noted = b.call_typed(take_fty, m.const_address(take), &[])?.as_value();
                let own = b.icmp(crate::llvm::ICMP_NE, status, m.const_int(i32t, 0))?;
                status = b.select(own, status, noted)?;
            }
            t.set_operand(0, status);
        }
    }
    Ok(())
}
