//! Control-flow facts the reverse transform needs: predecessors, dominators, which
//! blocks lie on a cycle, which blocks return.

use crate::llvm::{Block, Function, Opcode, Value};
use crate::symbols::callee_name;
use std::collections::{HashMap, HashSet};

/// The control-flow graph of one function.
#[derive(Clone)]
pub struct Cfg<'ctx> {
    /// Blocks in layout order; index 0 is the entry.
    pub blocks: Vec<Block<'ctx>>,
    index: HashMap<Block<'ctx>, usize>,
    /// Distinct predecessors of each block, in a fixed order.
    pub preds: Vec<Vec<usize>>,
    /// Successors of each block.
    pub succs: Vec<Vec<usize>>,
    /// Immediate dominator of each reachable block (the entry is its own).
    idom: Vec<Option<usize>>,
    /// Blocks on some cycle (loop bodies and headers).
    pub in_cycle: Vec<bool>,
    /// Blocks that end with `ret`.
    pub returns: Vec<usize>,
    rpo: Vec<usize>,
}

impl<'ctx> Cfg<'ctx> {
    /// Computes the CFG of `f`.
    pub fn compute(f: Function<'ctx>) -> Cfg<'ctx> {
        let blocks = f.blocks();
        let index: HashMap<Block<'ctx>, usize> = blocks.iter().enumerate().map(|(i, b)| (*b, i)).collect();
        let n = blocks.len();
        let mut succs = vec![Vec::new(); n];
        let mut preds = vec![Vec::new(); n];
        let mut returns = Vec::new();
        for (i, b) in blocks.iter().enumerate() {
            let Some(t) = b.terminator() else { continue };
            if t.opcode() == Opcode::LLVMRet {
                returns.push(i);
            }
            for s in t.successors() {
                let j = index[&s];
                if !succs[i].contains(&j) {
                    succs[i].push(j);
                }
                if !preds[j].contains(&i) {
                    preds[j].push(i);
                }
            }
        }
        let (idom, rpo) = dominators(n, &succs, &preds);
        let in_cycle = on_cycles(&succs);
        let returns = returns.into_iter().filter(|&r| idom[r].is_some()).collect();
        Cfg { blocks, index, preds, succs, idom, in_cycle, returns, rpo }
    }

    /// Index of block `b`.
    pub fn index(&self, b: Block<'ctx>) -> usize {
        self.index[&b]
    }

    /// Whether block `a` dominates block `b`.
    pub fn dominates(&self, a: usize, b: usize) -> bool {
        let mut x = b;
        loop {
            if x == a {
                return true;
            }
            match self.idom[x] {
                Some(p) if p != x => x = p,
                _ => return false,
            }
        }
    }

    /// For a block `j` of two predecessors, the conditional branch that decides which
    /// one each entry into `j` comes from: `(cond, [pred if true, pred if false])`,
    /// indices into `preds[j]`. The branch ends `j`'s immediate dominator `c`, each of
    /// its two edges reaches one predecessor of `j` (without passing `c` or `j` again;
    /// the edge itself when `c` is the predecessor), not the same one, and no cycle
    /// through `j` avoids `c`. Then between the last run of `c` and an entry into `j`
    /// the path leaves `c` by one edge and reaches `j` once, through the predecessor
    /// that edge reaches: the predecessor follows from the condition's value at `c`.
    pub fn branch_decides(&self, j: usize) -> Option<(Value<'ctx>, [usize; 2])> {
        let preds = &self.preds[j];
        let c = self.idom[j].filter(|&c| c != j && preds.len() == 2)?;
        let term = self.blocks[c].terminator().filter(|t| t.opcode() == Opcode::LLVMBr && t.num_operands() == 3)?;
        // (`successors` in LLVM's order: the true destination, then the false one.)
        let dest: Vec<usize> = term.successors().into_iter().map(|b| self.index(b)).collect();
        if dest[0] == dest[1] {
            return None;
        }
        // The predecessors of `j` reached from `from` without entering `c` or `j`.
        let reached = |from: &[usize]| -> Vec<usize> {
            let mut seen = vec![false; self.blocks.len()];
            let mut stack: Vec<usize> = from.iter().copied().filter(|&s| s != c && s != j).collect();
            let mut found = Vec::new();
            while let Some(x) = stack.pop() {
                if std::mem::replace(&mut seen[x], true) {
                    continue;
                }
                found.extend(preds.iter().position(|&p| p == x));
                stack.extend(self.succs[x].iter().copied().filter(|&s| s != c && s != j && !seen[s]));
            }
            found
        };
        if !reached(&self.succs[j]).is_empty() {
            return None; // a cycle through `j` that avoids `c`
        }
        let by_edge = |d: usize| -> Vec<usize> {
            if d == j {
                preds.iter().position(|&p| p == c).into_iter().collect()
            } else {
                reached(&[d])
            }
        };
        match (by_edge(dest[0]).as_slice(), by_edge(dest[1]).as_slice()) {
            (&[t], &[f]) if t != f => Some((term.operand(0), [t, f])),
            _ => None,
        }
    }

    /// Reachable blocks in reverse postorder: definitions come before their uses
    /// (except through phis).
    pub fn reverse_postorder(&self) -> Vec<usize> {
        self.rpo.clone()
    }

    /// Blocks from which some `ret` can be reached. The others end in `unreachable`
    /// (Julia's error paths: box the value, build the exception, throw).
    pub fn reaches_return(&self) -> Vec<bool> {
        let mut out = vec![false; self.blocks.len()];
        let mut stack: Vec<usize> = self.returns.clone();
        while let Some(b) = stack.pop() {
            if !out[b] {
                out[b] = true;
                stack.extend(self.preds[b].iter().copied());
            }
        }
        out
    }

    /// Whether block `b` is reachable from the entry.
    pub fn reachable(&self, b: usize) -> bool {
        self.idom[b].is_some()
    }

    /// Blocks of `try` bodies (`try_regions`) and the first block of each `catch`. An
    /// exception thrown there resumes at a `catch`, an edge the CFG does not show: a
    /// block of a try body that ends in `unreachable` does not end the computation.
    /// Where `try_regions` does not recognize the handlers, every block a `setjmp`
    /// leads to.
    pub fn try_bodies(&self) -> Vec<bool> {
        let mut body = vec![false; self.blocks.len()];
        match self.try_regions() {
            Some(regions) => {
                for t in regions {
                    body[t.catch] = true;
                    for b in t.body {
                        body[b] = true;
                    }
                }
            }
            None => {
                let mut stack: Vec<usize> = (0..self.blocks.len())
                    .filter(|&b| self.reachable(b) && self.blocks[b].instructions().into_iter().any(is_setjmp_call))
                    .flat_map(|b| self.succs[b].iter().copied())
                    .collect();
                while let Some(x) = stack.pop() {
                    if !body[x] {
                        body[x] = true;
                        stack.extend(self.succs[x].iter().copied());
                    }
                }
            }
        }
        body
    }

    /// Whether `value` is available at `load` (its definition dominates it) and every
    /// run that computes `value` and then reaches `load` executes `store` in between
    /// (`value` an argument or constant: from the function's entry). The
    /// paths counted include the jumps exceptions make from a `try` body to its `catch`,
    /// which the graph does not show, and not the `setjmp` block's own edge to the
    /// `catch`, taken only when such a jump returns there. `false` where that is not
    /// known: a `try` of another shape, `store` after a call
    /// in its block (the call may throw before it), or `load` in the block of `value`
    /// or `store`.
    pub fn stored_between(&self, value: Value<'ctx>, store: Value<'ctx>, load: Value<'ctx>) -> bool {
        let def = if value.is_instruction() { self.index(value.parent_block()) } else { 0 };
        let (s, l) = (self.index(store.parent_block()), self.index(load.parent_block()));
        if l == def || l == s || !self.dominates(def, l) {
            return false;
        }
        let mut before_store = store.parent_block().instructions().into_iter().take_while(|&i| i != store);
        if before_store.any(may_throw) {
            return false;
        }
        if def == s {
            return true;
        }
        let Some(handlers) = self.handlers() else { return false };
        let mut seen = HashSet::new();
        let mut stack = handlers.steps(self, def, handlers.may_be_active(def), true, true);
        while let Some((b, active)) = stack.pop() {
            if b == l {
                return false;
            }
            if b == s || !seen.insert((b, active)) {
                continue;
            }
            stack.extend(handlers.steps(self, b, active, true, true));
        }
        true
    }

    /// Whether a run may execute instruction `to` after instruction `from` with no
    /// instruction for which `kills` holds in between: later in `from`'s block, or in a
    /// block a path leads to from there. The jumps exceptions make from a `try` body to
    /// its `catch` (`with_exception_edges`) may leave a block before its killing
    /// instruction, so they are taken whatever the block holds; `true` for a `try` of
    /// another shape.
    pub fn may_follow(&self, from: Value<'ctx>, to: Value<'ctx>, kills: impl Fn(Value<'ctx>) -> bool) -> bool {
        let Some(handlers) = self.handlers() else { return true };
        // Scans block `b` from its start (or after `from`): whether `to` comes before a
        // killing instruction, whether the block ends with nothing killed, and whether a
        // call that may throw comes before the kill (or the end).
        let scan = |b: usize, after: Option<Value<'ctx>>| {
            let instructions = self.blocks[b].instructions();
            let start = after.map_or(0, |f| instructions.iter().position(|&i| i == f).map_or(0, |k| k + 1));
            let mut throws = false;
            for &i in &instructions[start..] {
                if i == to {
                    return (true, false, throws);
                }
                if kills(i) {
                    return (false, false, throws);
                }
                throws |= may_throw(i);
            }
            (false, true, throws)
        };
        let mut seen = HashSet::new();
        let mut stack = Vec::new();
        let f = self.index(from.parent_block());
        // (The exceptions' jumps are taken from a block where a call may throw before
        // what kills; its successors only when nothing in it kills.)
        let enter = |b: usize, active: u64, after: Option<Value<'ctx>>, stack: &mut Vec<(usize, u64)>| {
            let (found, open, throws) = scan(b, after);
            stack.extend(handlers.steps(self, b, active, throws, open));
            found
        };
        if enter(f, handlers.may_be_active(f), Some(from), &mut stack) {
            return true;
        }
        while let Some((b, active)) = stack.pop() {
            if seen.insert((b, active)) && enter(b, active, None, &mut stack) {
                return true;
            }
        }
        false
    }

    /// The `try` regions (`try_regions`) as the walks of `stored_between` and
    /// `may_follow` follow them. `None` where `try_regions` is, or for more than 64.
    fn handlers(&self) -> Option<Handlers> {
        let regions = self.try_regions()?;
        if regions.len() > 64 {
            return None;
        }
        let mut in_body = vec![0u64; self.blocks.len()];
        for (k, t) in regions.iter().enumerate() {
            for &b in &t.body {
                in_body[b] |= 1 << k;
            }
        }
        Some(Handlers { regions, in_body })
    }

    /// Every `try` of the function: its `setjmp` block, its `catch` and its body: what
    /// `setjmp`'s first return leads to while the `try`'s handler is on Julia's handler
    /// stack. A `try` inside another pushes a handler of its own at its `setjmp` (its
    /// body and its `catch` start with both on the stack); `jl_pop_handler(n)` pops `n`
    /// (a `catch` pops its own first, a `return` from inside pops all). So the body of an
    /// outer `try` holds the inner `try`'s body and `catch` too: an exception thrown in the
    /// inner body goes to the inner `catch`, one thrown in the inner `catch` after its
    /// pop to the outer. `None` for a `try` whose branch has another shape, or a block
    /// reached with different handlers on the stack.
    pub fn try_regions(&self) -> Option<Vec<TryRegion>> {
        let pop_handler = crate::julia::current().pop_handler;
        let pops = |i: Value| -> Option<Option<u64>> {
            let name = i.called_operand_if_call().and_then(callee_name)?;
            name.contains(pop_handler).then(|| i.operand(0).const_uint())
        };
        let mut regions = Vec::new();
        for d in (0..self.blocks.len()).filter(|&b| self.reachable(b)) {
            let Some(call) = self.blocks[d].instructions().into_iter().find(|&i| is_setjmp_call(i)) else { continue };
            let catch = self.index(catch_block(self.blocks[d], call)?);
            // Handlers pushed since this `try`'s, on entry to each block reached.
            let mut depth: Vec<Option<u64>> = vec![None; self.blocks.len()];
            let mut body = Vec::new();
            let mut stack: Vec<(usize, u64)> =
                self.succs[d].iter().copied().filter(|&x| x != catch).map(|x| (x, 0)).collect();
            while let Some((x, k)) = stack.pop() {
                match depth[x] {
                    Some(seen) if seen == k => continue,
                    Some(_) => return None,
                    None if x == catch || x == d => return None,
                    None => {}
                }
                depth[x] = Some(k);
                body.push(x);
                let mut out = Some(k);
                for i in self.blocks[x].instructions() {
                    if is_setjmp_call(i) {
                        out = out.map(|k| k + 1);
                    } else if let Some(n) = pops(i) {
                        let n = n?;
                        out = out.and_then(|k| k.checked_sub(n));
                    }
                }
                // (`None`: this `try`'s handler popped, the body ends here.)
                if let Some(k) = out {
                    stack.extend(self.succs[x].iter().map(|&s| (s, k)));
                }
            }
            body.sort_unstable();
            regions.push(TryRegion { setjmp: d, catch, body });
        }
        Some(regions)
    }

    /// The loops whose iterations the reverse sweep can count (`CountedLoop`).
    pub fn counted_loops(&self) -> Vec<CountedLoop> {
        let ends_in_unreachable =
            |b: usize| self.blocks[b].terminator().map(|t| t.opcode()) == Some(Opcode::LLVMUnreachable);
        let mut out = Vec::new();
        'headers: for header in (0..self.blocks.len()).filter(|&h| self.reachable(h) && self.preds[h].len() == 2) {
            let [a, b] = [self.preds[header][0], self.preds[header][1]];
            let (preheader, latch) = match (self.dominates(header, a), self.dominates(header, b)) {
                (false, true) => (a, b),
                (true, false) => (b, a),
                _ => continue,
            };
            // The natural loop of the back edge: what reaches the latch without the header.
            let mut body = HashSet::from([header]);
            let mut stack = vec![latch];
            while let Some(x) = stack.pop() {
                if body.insert(x) {
                    stack.extend(self.preds[x].iter().copied());
                }
            }
            if body.iter().any(|&x| !self.dominates(header, x)) {
                continue;
            }
            let mut exits = Vec::new();
            for &x in &body {
                for &o in &self.succs[x] {
                    if body.contains(&o) || exits.contains(&o) || ends_in_unreachable(o) {
                        continue;
                    }
                    if self.preds[o].iter().any(|p| !body.contains(p)) {
                        continue 'headers;
                    }
                    exits.push(o);
                }
            }
            exits.sort_unstable();
            let mut body: Vec<usize> = body.into_iter().collect();
            body.sort_unstable();
            out.push(CountedLoop { header, preheader, latch, exits, body });
        }
        out
    }
}

/// Whether instruction `i` may throw: a call (not inline assembly, not an intrinsic).
fn may_throw(i: Value) -> bool {
    i.called_operand_if_call().is_some_and(|callee| !callee.is_inline_asm() && callee.intrinsic_id() == 0)
}

/// The `try` regions of a function, for walks that take the jumps exceptions make. A
/// walk's state is a block and the regions whose handler may be on Julia's handler stack
/// on entering it (a mask, bit k for region k): an exception thrown in a block jumps to
/// the `catch` of each of those whose body holds it. A region's handler is pushed on
/// going from its `setjmp` block into its body and is off the stack once the walk leaves
/// the body (its `jl_pop_handler` ran). So a block that the bodies of several `try`s share
/// (the bounds error of an unrolled loop with a `try` in each iteration) sends an
/// exception only to the `catch` of the `try` the walk entered it from.
struct Handlers {
    regions: Vec<TryRegion>,
    /// For each block, the regions whose body holds it.
    in_body: Vec<u64>,
}

impl Handlers {
    /// The regions whose handler may be on the stack in block `b` when a walk starts
    /// there: every one whose body holds it.
    fn may_be_active(&self, b: usize) -> u64 {
        self.in_body[b]
    }

    /// The states a walk reaches from block `b` entered with handlers `active`: when
    /// `throws`, the exceptions' jumps to the `catch`es, and, when `normal`, the block's
    /// successors (not a `setjmp` block's edge to its `catch`, taken only when an
    /// exception jumps there).
    fn steps(&self, cfg: &Cfg, b: usize, active: u64, throws: bool, normal: bool) -> Vec<(usize, u64)> {
        let mut out = Vec::new();
        for (k, t) in self.regions.iter().enumerate() {
            if throws && active & (1 << k) != 0 && self.in_body[b] & (1 << k) != 0 {
                // (Still on the stack in the `catch`: the enclosing regions' handlers.)
                out.push((t.catch, active & self.in_body[t.catch] & !(1 << k)));
            }
        }
        if normal {
            for &y in &cfg.succs[b] {
                if self.regions.iter().any(|t| t.setjmp == b && t.catch == y) {
                    continue;
                }
                let entered: u64 = (0..self.regions.len())
                    .filter(|&k| self.regions[k].setjmp == b && self.in_body[y] & (1 << k) != 0)
                    .fold(0, |m, k| m | 1 << k);
                out.push((y, (active & self.in_body[y]) | entered));
            }
        }
        out
    }
}

/// One `try` (`Cfg::try_regions`), by block index.
#[derive(Clone, Debug)]
pub struct TryRegion {
    /// The block that calls `setjmp`, which an exception in the body returns to.
    pub setjmp: usize,
    /// Where `setjmp`'s second return leads.
    pub catch: usize,
    /// The blocks an exception thrown in them takes to `catch`, in layout order.
    pub body: Vec<usize>,
}

/// A loop whose header is entered once from outside (`preheader`), then only from its
/// one `latch`, and whose exits (blocks outside it with a predecessor inside, paths that
/// throw aside) have all their predecessors inside. The forward sweep counts how often
/// the latch was taken and records the count once, on the way out; the reverse sweep
/// counts back down instead of reading the header's predecessor from the tape on every
/// iteration.
#[derive(Clone)]
pub struct CountedLoop {
    /// The block the back edge enters.
    pub header: usize,
    /// The header's predecessor outside the loop.
    pub preheader: usize,
    /// The header's predecessor inside the loop.
    pub latch: usize,
    /// Exit blocks, where the count is recorded.
    pub exits: Vec<usize>,
    /// The loop's blocks, header included.
    pub body: Vec<usize>,
}

/// Whether `target` is reachable from any of `from`.
#[cfg(test)]
fn reaches(succs: &[Vec<usize>], from: &[usize], target: usize) -> bool {
    let mut seen = HashSet::new();
    let mut stack: Vec<usize> = from.to_vec();
    while let Some(x) = stack.pop() {
        if x == target {
            return true;
        }
        if seen.insert(x) {
            stack.extend(succs[x].iter().copied());
        }
    }
    false
}

/// Which nodes of the graph `succs` lie on a cycle: those of a strongly connected
/// component of more than one node, or with an edge to themselves (Tarjan's algorithm,
/// iterative: linear in the graph, where a search from each node took a sixth of a
/// large function's analysis).
fn on_cycles(succs: &[Vec<usize>]) -> Vec<bool> {
    const UNSEEN: usize = usize::MAX;
    let n = succs.len();
    let (mut index, mut low) = (vec![UNSEEN; n], vec![0; n]);
    let mut on_stack = vec![false; n];
    let (mut stack, mut next) = (Vec::new(), 0);
    let mut cyclic = vec![false; n];
    for root in 0..n {
        if index[root] != UNSEEN {
            continue;
        }
        // (Node, index of its next successor to visit.)
        let mut work = vec![(root, 0usize)];
        index[root] = next;
        low[root] = next;
        next += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(&mut (v, ref mut k)) = work.last_mut() {
            if let Some(&w) = succs[v].get(*k) {
                *k += 1;
                if index[w] == UNSEEN {
                    index[w] = next;
                    low[w] = next;
                    next += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                let mut component = Vec::new();
                loop {
                    let w = stack.pop().expect("v is on the stack");
                    on_stack[w] = false;
                    component.push(w);
                    if w == v {
                        break;
                    }
                }
                let cycle = component.len() > 1 || succs[v].contains(&v);
                for w in component {
                    cyclic[w] = cycle;
                }
            }
        }
    }
    cyclic
}

/// Cooper–Harvey–Kennedy iterative dominators over a reverse postorder.
fn dominators(n: usize, succs: &[Vec<usize>], preds: &[Vec<usize>]) -> (Vec<Option<usize>>, Vec<usize>) {
    if n == 0 {
        return (Vec::new(), Vec::new());
    }
    // Reverse postorder from the entry, iteratively.
    let mut order = Vec::with_capacity(n);
    let mut visited = vec![false; n];
    let mut stack = vec![(0usize, 0usize)];
    visited[0] = true;
    while let Some((b, i)) = stack.pop() {
        if i < succs[b].len() {
            stack.push((b, i + 1));
            let s = succs[b][i];
            if !visited[s] {
                visited[s] = true;
                stack.push((s, 0));
            }
        } else {
            order.push(b);
        }
    }
    order.reverse();
    let mut rpo = vec![usize::MAX; n];
    for (i, b) in order.iter().enumerate() {
        rpo[*b] = i;
    }
    let mut idom: Vec<Option<usize>> = vec![None; n];
    idom[0] = Some(0);
    let mut changed = true;
    while changed {
        changed = false;
        for &b in order.iter().skip(1) {
            let mut new: Option<usize> = None;
            for &p in &preds[b] {
                if idom[p].is_none() {
                    continue;
                }
                new = Some(match new {
                    None => p,
                    Some(q) => intersect(&idom, &rpo, p, q),
                });
            }
            if new.is_some() && idom[b] != new {
                idom[b] = new;
                changed = true;
            }
        }
    }
    (idom, order)
}

fn intersect(idom: &[Option<usize>], rpo: &[usize], mut a: usize, mut b: usize) -> usize {
    while a != b {
        while rpo[a] > rpo[b] {
            a = idom[a].expect("processed");
        }
        while rpo[b] > rpo[a] {
            b = idom[b].expect("processed");
        }
    }
    a
}

/// The `catch` of the `try` whose `setjmp` is `call` in block `bb`: the successor `bb`'s
/// branch takes when the `setjmp` returns non-zero (`br (setjmp(...) == 0), try,
/// catch`), when the branch has that shape.
pub fn catch_block<'ctx>(bb: Block<'ctx>, call: Value<'ctx>) -> Option<Block<'ctx>> {
    let t = bb.terminator()?;
    if t.opcode() != Opcode::LLVMBr || t.num_operands() != 3 {
        return None;
    }
    let c = t.operand(0);
    if c.opcode_if_instruction() != Some(Opcode::LLVMICmp)
        || c.operand(0) != call
        || c.operand(1).const_uint() != Some(0)
    {
        return None;
    }
    let succ = t.successors();
    match c.icmp_predicate() {
        crate::llvm::IntPredicate::LLVMIntEQ => succ.get(1).copied(),
        crate::llvm::IntPredicate::LLVMIntNE => succ.first().copied(),
        _ => None,
    }
}

/// Whether instruction `i` calls the `setjmp` of a `try`.
pub fn is_setjmp_call(i: Value) -> bool {
    i.called_operand_if_call().and_then(callee_name).is_some_and(|n| n.contains(crate::julia::current().setjmp))
}

#[cfg(test)]
mod tests {
    use super::Cfg;
    use crate::llvm::{Context, OwnedModule};

    /// `on_cycles` against its definition (a node is on a cycle when a path leads from
    /// one of its successors back to it), on random graphs of 0 to 40 nodes with up to
    /// three edges each, self-edges and unreachable nodes included.
    #[test]
    fn on_cycles_is_being_on_a_cycle() {
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |bound: usize| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 33) as usize) % bound.max(1)
        };
        for _ in 0..2000 {
            let n = next(41);
            let succs: Vec<Vec<usize>> = (0..n).map(|_| (0..next(4)).map(|_| next(n)).collect()).collect();
            let want: Vec<bool> = (0..n).map(|i| super::reaches(&succs, &succs[i], i)).collect();
            assert_eq!(super::on_cycles(&succs), want, "{succs:?}");
        }
    }

    /// `for i in 0:n-1` with the zero-trip guard jumping straight to the exit (Julia's
    /// shape), before and after `loop-simplify` gives the loop a dedicated exit.
    const GUARDED_LOOP: &str = r#"
define double @f(i64 %n) {
top:
  %skip = icmp sle i64 %n, 0
  br i1 %skip, label %out, label %body
body:
  %i = phi i64 [ 0, %top ], [ %i1, %body ]
  %s = phi double [ 0.0, %top ], [ %s1, %body ]
  %s1 = fadd double %s, 1.0
  %i1 = add i64 %i, 1
  %done = icmp eq i64 %i1, %n
  br i1 %done, label %out, label %body
out:
  %r = phi double [ 0.0, %top ], [ %s1, %body ]
  ret double %r
}
"#;

    /// A `try` in a loop, Julia's shape: a value live across it is stored into a slot in
    /// the body (`@BODY@`, blocks that end by branching to `try.end`), and read back in
    /// the `catch`.
    const TRY_IN_LOOP: &str = r#"
declare i32 @__sigsetjmp(ptr, i32)
declare void @jl_pop_handler(i32)
declare void @may_throw()

define double @f(double %x, i1 %c) {
top:
  %buf = alloca [200 x i8]
  %slot = alloca double
  br label %loop
loop:
  %s = phi double [ 0.0, %top ], [ %s1, %next ]
  %v = fadd double %s, %x
  %sj = call i32 @__sigsetjmp(ptr %buf, i32 0)
  %z = icmp eq i32 %sj, 0
  br i1 %z, label %try, label %catch
@BODY@
try.end:
  call void @jl_pop_handler(i32 1)
  br label %next
catch:
  call void @jl_pop_handler(i32 1)
  %r = load volatile double, ptr %slot
  br label %next
next:
  %s1 = phi double [ %v, %try.end ], [ %r, %catch ]
  br i1 %c, label %loop, label %out
out:
  ret double %s1
}
"#;

    /// `Cfg::stored_between` for the value, its store and the `catch`'s load in
    /// `TRY_IN_LOOP` with the body `body`.
    fn stored_between_in(body: &str) -> bool {
        let ctx = Context::create();
        let m = OwnedModule::parse_ir(&ctx, &TRY_IN_LOOP.replace("@BODY@", body)).unwrap();
        let f = m.function("f").unwrap();
        let insts: Vec<_> = f.blocks().into_iter().flat_map(|b| b.instructions()).collect();
        let named = |n: &str| insts.iter().copied().find(|i| i.name() == n).unwrap();
        let store = insts.iter().copied().find(|i| i.opcode() == crate::llvm::Opcode::LLVMStore).unwrap();
        Cfg::compute(f).stored_between(named("v"), store, named("r"))
    }

    #[test]
    fn a_value_stored_on_entering_a_try_in_a_loop_is_what_its_catch_reads() {
        const STORE: &str = "store volatile double %v, ptr %slot";
        const THROW: &str = "call void @may_throw()";
        // Every iteration stores its own value before the body may throw.
        assert!(stored_between_in(&format!("try:\n  {STORE}\n  {THROW}\n  br label %try.end")));
        // The body may throw before the store: the `catch` may read the last iteration's.
        assert!(!stored_between_in(&format!("try:\n  {THROW}\n  {STORE}\n  br label %try.end")));
        // Stored on one path of the body only: the other may throw without it.
        assert!(!stored_between_in(&format!(
            "try:\n  br i1 %c, label %stored, label %other\nstored:\n  {STORE}\n  {THROW}\n  br label %try.end\n\
             other:\n  {THROW}\n  br label %try.end"
        )));
    }

    /// Two `try`s in a row (a loop of two iterations, unrolled), each storing its value
    /// into the same slot, whose bodies share the block that throws a bounds error: an
    /// exception there goes to the `catch` of the `try` the run is in, so each `catch`
    /// reads the value its own `try` stored. (Taking the shared block's jumps to both
    /// `catch`es, the first `catch` could read the second `try`'s value.)
    #[test]
    fn tries_sharing_a_throwing_block_each_catch_what_their_own_body_throws() {
        let text = r#"
declare i32 @__sigsetjmp(ptr, i32)
declare void @jl_pop_handler(i32)
declare void @throw_error() noreturn

define double @f(double %x, i1 %c) {
top:
  %buf = alloca [200 x i8]
  %slot = alloca double
  %v1 = fadd double %x, 1.0
  %sj1 = call i32 @__sigsetjmp(ptr %buf, i32 0)
  %z1 = icmp eq i32 %sj1, 0
  br i1 %z1, label %try1, label %catch1
try1:
  store volatile double %v1, ptr %slot
  br i1 %c, label %oob, label %end1
end1:
  call void @jl_pop_handler(i32 1)
  br label %second
catch1:
  call void @jl_pop_handler(i32 1)
  %r1 = load volatile double, ptr %slot
  br label %second
second:
  %s = phi double [ %v1, %end1 ], [ %r1, %catch1 ]
  %v2 = fadd double %s, 1.0
  %sj2 = call i32 @__sigsetjmp(ptr %buf, i32 0)
  %z2 = icmp eq i32 %sj2, 0
  br i1 %z2, label %try2, label %catch2
try2:
  store volatile double %v2, ptr %slot
  br i1 %c, label %oob, label %end2
end2:
  call void @jl_pop_handler(i32 1)
  br label %out
catch2:
  call void @jl_pop_handler(i32 1)
  %r2 = load volatile double, ptr %slot
  br label %out
oob:
  call void @throw_error()
  unreachable
out:
  %t = phi double [ %v2, %end2 ], [ %r2, %catch2 ]
  ret double %t
}
"#;
        let ctx = Context::create();
        let m = OwnedModule::parse_ir(&ctx, text).unwrap();
        let f = m.function("f").unwrap();
        let insts: Vec<_> = f.blocks().into_iter().flat_map(|b| b.instructions()).collect();
        let named = |n: &str| insts.iter().copied().find(|i| i.name() == n).unwrap();
        let store_of = |v: &str| {
            insts
                .iter()
                .copied()
                .find(|i| i.opcode() == crate::llvm::Opcode::LLVMStore && i.operand(0).name() == v)
                .unwrap()
        };
        let cfg = Cfg::compute(f);
        assert_eq!(cfg.try_regions().map(|r| r.len()), Some(2));
        let (store1, store2) = (store_of("v1"), store_of("v2"));
        assert!(cfg.stored_between(named("v1"), store1, named("r1")));
        assert!(cfg.stored_between(named("v2"), store2, named("r2")));
        // No run from the second store reaches the first `catch`; every run from the
        // first to the second `catch` passes the second store.
        assert!(!cfg.may_follow(store2, named("r1"), |i| i == store1));
        assert!(!cfg.may_follow(store1, named("r2"), |i| i == store2));
        // Without the second store in between, the first store's value reaches it.
        assert!(cfg.may_follow(store1, named("r2"), |_| false));
    }

    /// A loop whose iteration runs `@BODY@` (blocks ending by a branch to `latch`, which
    /// stores `%box` into `%slot` and loops again), for `Cfg::may_follow` from that store
    /// to the load `%r`, killed by stores of anything else into the slot.
    const BOX_IN_LOOP: &str = r#"
define void @f(i1 %c, i1 %d, ptr %box, ptr %other) {
top:
  %slot = alloca ptr
  br label %loop
loop:
  @BODY@
latch:
  store ptr %box, ptr %slot
  br i1 %c, label %loop, label %out
out:
  ret void
}
"#;

    fn box_reaches_load(body: &str) -> bool {
        let ctx = Context::create();
        let m = OwnedModule::parse_ir(&ctx, &BOX_IN_LOOP.replace("@BODY@", body)).unwrap();
        let f = m.function("f").unwrap();
        let insts: Vec<_> = f.blocks().into_iter().flat_map(|b| b.instructions()).collect();
        fn store_of(name: &'static str) -> impl Fn(crate::llvm::Value) -> bool {
            move |i| i.opcode() == crate::llvm::Opcode::LLVMStore && i.operand(0).name() == name
        }
        let box_store = insts.iter().copied().find(|&i| store_of("box")(i)).unwrap();
        let load = insts.iter().copied().find(|i| i.name() == "r").unwrap();
        Cfg::compute(f).may_follow(box_store, load, store_of("other"))
    }

    #[test]
    fn a_store_in_between_hides_what_the_last_iteration_stored() {
        const OVERWRITE: &str = "store ptr %other, ptr %slot";
        const LOAD: &str = "%r = load ptr, ptr %slot";
        assert!(!box_reaches_load(&format!("{OVERWRITE}\n  {LOAD}\n  br label %latch")));
        // Read before it is overwritten: the next iteration sees the box.
        assert!(box_reaches_load(&format!("{LOAD}\n  {OVERWRITE}\n  br label %latch")));
        // Overwritten on one path only.
        assert!(box_reaches_load(&format!(
            "br i1 %d, label %a, label %b\na:\n  {OVERWRITE}\n  br label %b\nb:\n  {LOAD}\n  br label %latch"
        )));
        assert!(!box_reaches_load(&format!(
            "br i1 %d, label %a, label %b\na:\n  {OVERWRITE}\n  br label %j\nb:\n  {OVERWRITE}\n  br label %j\n\
             j:\n  {LOAD}\n  br label %latch"
        )));
    }

    #[test]
    fn a_loop_is_counted_once_its_exit_is_dedicated() {
        let ctx = Context::create();
        let m = OwnedModule::parse_ir(&ctx, GUARDED_LOOP).unwrap();
        let f = m.function("f").unwrap();
        // `out` is also entered from `top`: the count would be recorded on the wrong path.
        assert!(Cfg::compute(f).counted_loops().is_empty());
        crate::llvm::passes::run(&m, "function(loop-simplify)").unwrap();
        let cfg = Cfg::compute(f);
        let loops = cfg.counted_loops();
        assert_eq!(loops.len(), 1);
        let l = &loops[0];
        let name = |b: usize| cfg.blocks[b].name();
        assert_eq!((name(l.header), name(l.latch)), ("body".to_string(), "body".to_string()));
        assert_eq!(cfg.preds[l.header].len(), 2);
        assert!(!cfg.in_cycle[l.preheader]);
        assert_eq!(l.exits.len(), 1);
        assert!(cfg.preds[l.exits[0]].iter().all(|&p| p == l.latch));
    }
}
