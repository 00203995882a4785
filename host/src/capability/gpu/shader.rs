//! WGSL from a tool, checked before the GPU sees it: parsed and validated
//! by naga, compute entry points only, buffers in group 0 only, and every
//! loop bounded so a runaway shader ends.
//!
//! Loop bounding rewrites the module: one private counter per invocation
//! counts the iterations of all its loops together, and once it reaches the
//! call's limit every loop exits at its next iteration. Code without loops
//! is bounded by its size: the entry point with every call inlined may not
//! pass [`MAX_INLINED_STATEMENTS`] (WGSL has no recursion, but a chain of
//! functions that each call the next twice would run 2^n times). The
//! rewritten module is validated again and handed to wgpu as naga IR, so
//! what runs is exactly what was checked.

use wgpu::naga::{
    self, AddressSpace, BinaryOperator, Block, Expression, Function, GlobalVariable, Handle, Literal, Module, Scalar,
    ShaderStage, Span, Statement, Type, TypeInner,
    valid::{Capabilities, ValidationFlags, Validator},
};

/// The name of the injected iteration counter.
const COUNTER: &str = "toolmesh_loop_iterations";

/// Longest WGSL source accepted, in bytes.
pub(crate) const MAX_SOURCE: usize = 1 << 20;

/// Most statements an entry point may run with every call inlined, loops
/// counted once.
pub(crate) const MAX_INLINED_STATEMENTS: u64 = 1 << 20;

/// A checked compute shader, ready for pipeline creation.
pub(crate) struct CheckedShader {
    /// The rewritten module.
    pub(crate) module: Module,
    /// The `@binding` indices of group 0 the entry point uses, sorted.
    pub(crate) bindings: Vec<u32>,
    /// Those of them the entry point's module may write
    /// (`var<storage, read_write>`), sorted.
    pub(crate) writable: Vec<u32>,
    /// Invocations in one workgroup (the product of `@workgroup_size`).
    pub(crate) workgroup_invocations: u64,
}

/// Parses, checks and bounds `source` for compute entry point `entry`.
/// The error is a message for the tool's author.
/// `features` are the device's optional features a kernel may use
/// (`enable f16;`, subgroup operations).
pub(crate) fn check(
    source: &str,
    entry: &str,
    max_loop_iterations: u32,
    features: wgpu::Features,
) -> Result<CheckedShader, String> {
    let capabilities = capabilities(features);
    if source.len() > MAX_SOURCE {
        return Err(format!("the WGSL is {} bytes, over the {MAX_SOURCE} accepted", source.len()));
    }
    let mut module = naga::front::wgsl::parse_str(source).map_err(|e| e.emit_to_string(source))?;
    let info = validate(&module, capabilities).map_err(|e| e.emit_to_string(source))?;
    let Some(index) = module.entry_points.iter().position(|p| p.name == entry) else {
        let names: Vec<&str> = module.entry_points.iter().map(|p| p.name.as_str()).collect();
        return Err(format!("no entry point `{entry}` (the module has: {})", names.join(", ")));
    };
    let point = &module.entry_points[index];
    if point.stage != ShaderStage::Compute {
        return Err(format!("`{entry}` is a {:?} entry point; only compute shaders run here", point.stage));
    }
    if module.entry_points.iter().any(|p| p.stage != ShaderStage::Compute) {
        return Err("the module has vertex or fragment entry points; only compute shaders run here".into());
    }
    if point.workgroup_size_overrides.is_some() {
        return Err("workgroup sizes set by `override` constants are not supported".into());
    }
    let workgroup_invocations = point.workgroup_size.iter().map(|&n| u64::from(n)).product();
    let statements = inlined_statements(&module, &point.function);
    if statements > MAX_INLINED_STATEMENTS {
        return Err(format!(
            "`{entry}` runs {statements} statements with its calls inlined, over the {MAX_INLINED_STATEMENTS} accepted"
        ));
    }
    let uses = info.get_entry_point(index);
    let mut bindings = Vec::new();
    let mut writable = Vec::new();
    for (handle, global) in module.global_variables.iter() {
        let Some(binding) = &global.binding else { continue };
        if uses[handle].is_empty() {
            continue;
        }
        let buffer = matches!(global.space, AddressSpace::Storage { .. } | AddressSpace::Uniform);
        if !buffer {
            return Err(format!(
                "`{}` at @group({}) @binding({}) is not a buffer: kernels bind storage or uniform buffers only",
                global.name.as_deref().unwrap_or("?"),
                binding.group,
                binding.binding
            ));
        }
        if binding.group != 0 {
            return Err(format!(
                "`{}` is in @group({}): kernels bind their buffers in group 0",
                global.name.as_deref().unwrap_or("?"),
                binding.group
            ));
        }
        bindings.push(binding.binding);
        if matches!(global.space, AddressSpace::Storage { access } if access.contains(naga::StorageAccess::STORE)) {
            writable.push(binding.binding);
        }
    }
    bindings.sort_unstable();
    writable.sort_unstable();
    bound_loops(&mut module, max_loop_iterations);
    validate(&module, capabilities).map_err(|e| format!("internal error bounding loops: {e}"))?;
    Ok(CheckedShader { module, bindings, writable, workgroup_invocations })
}

/// What the validator accepts beyond the defaults, given the device's
/// `features`.
fn capabilities(features: wgpu::Features) -> Capabilities {
    let mut capabilities = Capabilities::default();
    if features.contains(wgpu::Features::SHADER_F16) {
        capabilities |= Capabilities::SHADER_FLOAT16;
    }
    if features.contains(wgpu::Features::SUBGROUP) {
        capabilities |= Capabilities::SUBGROUP;
    }
    capabilities
}

fn validate(
    module: &Module,
    capabilities: Capabilities,
) -> Result<naga::valid::ModuleInfo, Box<naga::WithSpan<naga::valid::ValidationError>>> {
    Validator::new(ValidationFlags::all(), capabilities).validate(module).map_err(Box::new)
}

/// Statements `function` runs with every call inlined (a loop's body
/// counted once). Functions come before their callers in a module, so
/// each one's size is known when a later one calls it.
fn inlined_statements(module: &Module, function: &Function) -> u64 {
    let mut sizes: Vec<u64> = Vec::with_capacity(module.functions.len());
    for (_, f) in module.functions.iter() {
        let size = block_size(&f.body, &sizes);
        sizes.push(size);
    }
    block_size(&function.body, &sizes)
}

fn block_size(block: &Block, sizes: &[u64]) -> u64 {
    block.iter().fold(0u64, |total, statement| {
        let inner = match statement {
            Statement::Block(b) => block_size(b, sizes),
            Statement::If { accept, reject, .. } => block_size(accept, sizes).saturating_add(block_size(reject, sizes)),
            Statement::Switch { cases, .. } => {
                cases.iter().fold(0u64, |sum, case| sum.saturating_add(block_size(&case.body, sizes)))
            }
            Statement::Loop { body, continuing, .. } => {
                block_size(body, sizes).saturating_add(block_size(continuing, sizes))
            }
            Statement::Call { function, .. } => sizes.get(function.index()).copied().unwrap_or(u64::MAX),
            _ => 0,
        };
        total.saturating_add(1).saturating_add(inner)
    })
}

/// Adds the iteration counter and its check to every loop of `module`.
fn bound_loops(module: &mut Module, limit: u32) {
    let u32_type = module.types.insert(Type { name: None, inner: TypeInner::Scalar(Scalar::U32) }, Span::UNDEFINED);
    let zero = module.global_expressions.append(Expression::Literal(Literal::U32(0)), Span::UNDEFINED);
    let counter = module.global_variables.append(
        GlobalVariable {
            name: Some(COUNTER.into()),
            space: AddressSpace::Private,
            binding: None,
            ty: u32_type,
            init: Some(zero),
            memory_decorations: Default::default(),
        },
        Span::UNDEFINED,
    );
    let context = Context { types: &module.types, constants: &module.constants, globals: &module.global_expressions };
    for (_, function) in module.functions.iter_mut() {
        bound_function(function, counter, limit, &context);
    }
    for point in &mut module.entry_points {
        bound_function(&mut point.function, counter, limit, &context);
    }
}

/// What a function's expressions refer to in its module.
struct Context<'a> {
    types: &'a naga::UniqueArena<Type>,
    constants: &'a naga::Arena<naga::Constant>,
    globals: &'a naga::Arena<Expression>,
}

fn bound_function(function: &mut Function, counter: Handle<GlobalVariable>, limit: u32, context: &Context) {
    let mut body = std::mem::take(&mut function.body);
    let mut guard = Guard { function, counter, limit, context, pre: None };
    guard.walk(&mut body);
    function.body = body;
}

/// Adds checks to the loops of one function.
struct Guard<'a> {
    function: &'a mut Function,
    counter: Handle<GlobalVariable>,
    limit: u32,
    context: &'a Context<'a>,
    /// The pointer to the counter, one, and the limit: expressions that
    /// need no emitting, made once per function.
    pre: Option<[Handle<Expression>; 3]>,
}

impl Guard<'_> {
    fn walk(&mut self, block: &mut Block) {
        let statements = std::mem::take(block);
        for (mut statement, span) in statements.span_into_iter() {
            match &mut statement {
                Statement::Block(inner) => self.walk(inner),
                Statement::If { accept, reject, .. } => {
                    self.walk(accept);
                    self.walk(reject);
                }
                Statement::Switch { cases, .. } => cases.iter_mut().for_each(|case| self.walk(&mut case.body)),
                Statement::Loop { body, continuing, break_if } => {
                    let counted = match break_if {
                        None => counted_bound(self.function, body, continuing, self.context),
                        Some(_) => None,
                    };
                    self.walk(body);
                    self.walk(continuing);
                    match counted {
                        Some(n) => {
                            let (prelude, wrapped) = self.charge(n, statement, span);
                            block.extend_block(prelude);
                            statement = wrapped;
                        }
                        None => {
                            let check = self.check();
                            body.splice(0..0, check);
                        }
                    }
                }
                _ => {}
            }
            block.push(statement, span);
        }
    }

    /// The counter's pointer, one and the limit.
    fn pre(&mut self) -> [Handle<Expression>; 3] {
        let expressions = &mut self.function.expressions;
        *self.pre.get_or_insert_with(|| {
            [
                expressions.append(Expression::GlobalVariable(self.counter), Span::UNDEFINED),
                expressions.append(Expression::Literal(Literal::U32(1)), Span::UNDEFINED),
                expressions.append(Expression::Literal(Literal::U32(self.limit)), Span::UNDEFINED),
            ]
        })
    }

    /// A counted loop of at most `n` iterations, charged once on entry:
    /// `if counter < limit { counter = min(counter + n, u32::MAX); loop }`.
    /// Returns what goes before the `if` and the `if`.
    fn charge(&mut self, n: u32, looped: Statement, span: Span) -> (Block, Statement) {
        let [pointer, _, limit] = self.pre();
        let expressions = &mut self.function.expressions;
        let literal =
            |e: &mut naga::Arena<Expression>, v| e.append(Expression::Literal(Literal::U32(v)), Span::UNDEFINED);
        let (steps, room, most) =
            (literal(expressions, n), literal(expressions, u32::MAX - n), literal(expressions, u32::MAX));
        let start = expressions.len();
        let value = expressions.append(Expression::Load { pointer }, Span::UNDEFINED);
        let left = expressions
            .append(Expression::Binary { op: BinaryOperator::Less, left: value, right: limit }, Span::UNDEFINED);
        let mut prelude = Block::with_capacity(1);
        prelude.push(Statement::Emit(expressions.range_from(start)), Span::UNDEFINED);
        let start = expressions.len();
        let sum = expressions
            .append(Expression::Binary { op: BinaryOperator::Add, left: value, right: steps }, Span::UNDEFINED);
        let full = expressions
            .append(Expression::Binary { op: BinaryOperator::Greater, left: value, right: room }, Span::UNDEFINED);
        let charged =
            expressions.append(Expression::Select { condition: full, accept: most, reject: sum }, Span::UNDEFINED);
        let mut accept = Block::with_capacity(3);
        accept.push(Statement::Emit(expressions.range_from(start)), Span::UNDEFINED);
        accept.push(Statement::Store { pointer, value: charged }, Span::UNDEFINED);
        accept.push(looped, span);
        (prelude, Statement::If { condition: left, accept, reject: Block::new() })
    }

    /// `if counter >= limit { break; } counter += 1;` (never wraps)
    fn check(&mut self) -> Block {
        let [pointer, one, limit] = self.pre();
        let expressions = &mut self.function.expressions;
        let start = expressions.len();
        let value = expressions.append(Expression::Load { pointer }, Span::UNDEFINED);
        let spent = expressions.append(
            Expression::Binary { op: BinaryOperator::GreaterEqual, left: value, right: limit },
            Span::UNDEFINED,
        );
        let next = expressions
            .append(Expression::Binary { op: BinaryOperator::Add, left: value, right: one }, Span::UNDEFINED);
        let mut block = Block::with_capacity(3);
        block.push(Statement::Emit(expressions.range_from(start)), Span::UNDEFINED);
        let mut exit = Block::with_capacity(1);
        exit.push(Statement::Break, Span::UNDEFINED);
        block.push(Statement::If { condition: spent, accept: exit, reject: Block::new() }, Span::UNDEFINED);
        block.push(Statement::Store { pointer, value: next }, Span::UNDEFINED);
        block
    }
}

/// The most iterations of a loop that is left without a check because it
/// counts to a constant.
const COUNTED_MAX: u32 = 1 << 16;

/// The most iterations of a loop that is `for (var i = …; i < N; i++)`
/// (or `<=`) over a `u32` local `i`, with a constant N up to
/// [`COUNTED_MAX`], and `i` changed by nothing but that `i++`: such a loop
/// ends by itself, so it is charged its N iterations once on entry instead
/// of checked on every iteration (which would slow tight inner loops).
fn counted_bound(function: &Function, body: &Block, continuing: &Block, context: &Context) -> Option<u32> {
    let e = &function.expressions;
    let Some(Statement::If { condition, accept, reject }) = body.iter().find(|s| !matches!(s, Statement::Emit(_)))
    else {
        return None;
    };
    if !accept.is_empty() || !matches!(reject.iter().collect::<Vec<_>>()[..], [Statement::Break]) {
        return None;
    }
    let (inclusive, left, right) = match e[*condition] {
        Expression::Binary { op: BinaryOperator::Less, left, right } => (false, left, right),
        Expression::Binary { op: BinaryOperator::LessEqual, left, right } => (true, left, right),
        _ => return None,
    };
    let Expression::Load { pointer } = e[left] else { return None };
    let Expression::LocalVariable(var) = e[pointer] else { return None };
    let is_u32 = matches!(context.types[function.local_variables[var].ty].inner, TypeInner::Scalar(Scalar::U32));
    let bound = constant_u32(e, right, context).filter(|&n| is_u32 && n <= COUNTED_MAX)?;
    let is_var = |h: Handle<Expression>| matches!(e[h], Expression::LocalVariable(v) if v == var);
    // The continuing block is exactly `i = i + 1`.
    let mut stores = continuing.iter().filter(|s| !matches!(s, Statement::Emit(_)));
    let increment = match (stores.next(), stores.next()) {
        (Some(Statement::Store { pointer, value }), None) if is_var(*pointer) => *value,
        _ => return None,
    };
    let Expression::Binary { op: BinaryOperator::Add, left, right } = e[increment] else { return None };
    let loads_var = matches!(e[left], Expression::Load { pointer } if is_var(pointer));
    if !loads_var || constant_u32(e, right, context) != Some(1) || touches(body, &is_var) {
        return None;
    }
    Some(bound + u32::from(inclusive))
}

/// Whether `block` may change the variable `is_var` points at: a store to
/// it, or its pointer handed to a function.
fn touches(block: &Block, is_var: &dyn Fn(Handle<Expression>) -> bool) -> bool {
    block.iter().any(|statement| match statement {
        Statement::Store { pointer, .. } => is_var(*pointer),
        Statement::Call { arguments, .. } => arguments.iter().any(|a| is_var(*a)),
        Statement::Block(b) => touches(b, is_var),
        Statement::If { accept, reject, .. } => touches(accept, is_var) || touches(reject, is_var),
        Statement::Switch { cases, .. } => cases.iter().any(|c| touches(&c.body, is_var)),
        Statement::Loop { body, continuing, .. } => touches(body, is_var) || touches(continuing, is_var),
        _ => false,
    })
}

/// The value of a `u32` literal or constant.
fn constant_u32(e: &naga::Arena<Expression>, handle: Handle<Expression>, context: &Context) -> Option<u32> {
    let literal = match &e[handle] {
        Expression::Constant(c) => &context.globals[context.constants[*c].init],
        other => other,
    };
    match literal {
        Expression::Literal(Literal::U32(n)) => Some(*n),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A device with no optional features.
    const NONE: wgpu::Features = wgpu::Features::empty();

    #[test]
    fn half_floats_and_subgroups_pass_only_where_the_device_has_them() {
        let half = "enable f16;
            @group(0) @binding(0) var<storage, read> w: array<f16>;
            @group(0) @binding(1) var<storage, read_write> out: array<f32>;
            @compute @workgroup_size(64) fn main(@builtin(global_invocation_id) id: vec3<u32>) {
                out[id.x] = f32(w[id.x]);
            }";
        assert!(check(half, "main", 10, NONE).err().unwrap().contains("f16"));
        let checked = check(half, "main", 10, wgpu::Features::SHADER_F16).unwrap();
        assert_eq!((checked.bindings, checked.writable), (vec![0, 1], vec![1]));
        let subgroup = "@group(0) @binding(0) var<storage, read_write> out: array<f32>;
            @compute @workgroup_size(64) fn main(@builtin(global_invocation_id) id: vec3<u32>) {
                out[id.x] = subgroupAdd(1.0);
            }";
        assert!(check(subgroup, "main", 10, NONE).is_err());
        assert!(check(subgroup, "main", 10, wgpu::Features::SUBGROUP).is_ok());
    }

    const ADD: &str = "@group(0) @binding(0) var<storage, read_write> a: array<u32>;
        @group(0) @binding(2) var<storage, read> b: array<u32>;
        @compute @workgroup_size(64) fn main(@builtin(global_invocation_id) id: vec3<u32>) {
            var i = 0u;
            loop { if i >= 4u { break; } a[id.x] += b[id.x]; i += 1u; }
        }";

    #[test]
    fn a_compute_shader_passes_with_its_bindings_and_bounded_loops() {
        let checked = check(ADD, "main", 1000, NONE).unwrap();
        assert_eq!(checked.bindings, [0, 2]);
        let counter = checked.module.global_variables.iter().find(|(_, g)| g.name.as_deref() == Some(COUNTER));
        assert!(counter.is_some_and(|(_, g)| g.space == AddressSpace::Private));
        let body = &checked.module.entry_points[0].function.body;
        let looped = body.iter().find_map(|s| match s {
            Statement::Loop { body, .. } => Some(body),
            _ => None,
        });
        assert!(matches!(looped.and_then(|b| b.get(2)), Some(Statement::Store { .. })), "{looped:?}");
    }

    #[test]
    fn nested_loops_and_helper_functions_are_bounded_too() {
        let source = "@group(0) @binding(0) var<storage, read_write> a: array<u32>;
            fn spin(n: u32) -> u32 { var s = 0u; for (var j = 0u; j < n; j++) { s += j; } return s; }
            @compute @workgroup_size(1) fn main() {
                for (var i = 0u; i < a[9]; i++) { while true { a[i] = spin(i); break; } }
            }";
        let checked = check(source, "main", 10, NONE).unwrap();
        // Every loop, however nested, starts with the counter's check.
        fn guarded_loops(block: &Block) -> usize {
            block
                .iter()
                .map(|s| match s {
                    Statement::Loop { body, continuing, .. } => {
                        let head: Vec<&Statement> = body.iter().take(3).collect();
                        assert!(
                            matches!(head[..], [Statement::Emit(_), Statement::If { .. }, Statement::Store { .. }]),
                            "{head:?}"
                        );
                        1 + guarded_loops(body) + guarded_loops(continuing)
                    }
                    Statement::Block(b) => guarded_loops(b),
                    Statement::If { accept, reject, .. } => guarded_loops(accept) + guarded_loops(reject),
                    _ => 0,
                })
                .sum()
        }
        assert_eq!(guarded_loops(&checked.module.entry_points[0].function.body), 2);
        let (_, spin) = checked.module.functions.iter().next().unwrap();
        assert_eq!(guarded_loops(&spin.body), 1);
    }

    /// The loops of a function's body, outermost first, and whether each
    /// starts with the counter's check.
    fn checked_loops(block: &Block) -> Vec<bool> {
        let mut out = Vec::new();
        for statement in block.iter() {
            match statement {
                Statement::Loop { body, continuing, .. } => {
                    let head: Vec<&Statement> = body.iter().take(3).collect();
                    out.push(matches!(head[..], [Statement::Emit(_), Statement::If { .. }, Statement::Store { .. }]));
                    out.extend(checked_loops(body));
                    out.extend(checked_loops(continuing));
                }
                Statement::Block(b) => out.extend(checked_loops(b)),
                Statement::If { accept, reject, .. } => {
                    out.extend(checked_loops(accept));
                    out.extend(checked_loops(reject));
                }
                _ => {}
            }
        }
        out
    }

    #[test]
    fn loops_that_count_to_a_small_constant_need_no_check() {
        let source = "@group(0) @binding(0) var<storage, read_write> a: array<u32>;
            const TILE: u32 = 16u;
            @compute @workgroup_size(1) fn main() {
                for (var t = 0u; t < a[0]; t++) {
                    for (var i = 0u; i < TILE; i++) { a[i] += t; }
                    for (var j = 0u; j <= 8u; j++) { j += a[j]; }
                    for (var k = 0u; k < 8u; k += 2u) { a[k] = k; }
                    for (var m = 0u; m < 100000u; m++) { a[m] = m; }
                    for (var n = 0; n < 8; n++) { a[n] = 1u; }
                }
            }";
        let checked = check(source, "main", 10, NONE).unwrap();
        // t: runtime bound; i: counted; j: changed in its body; k: steps by 2;
        // m: bound too large; n: not u32.
        assert_eq!(checked_loops(&checked.module.entry_points[0].function.body), [true, false, true, true, true, true]);
    }

    #[test]
    fn only_the_bindings_the_entry_point_uses_are_required() {
        let source = "@group(0) @binding(0) var<storage, read_write> a: array<u32>;
            @group(0) @binding(1) var<storage, read_write> b: array<u32>;
            @compute @workgroup_size(8, 4) fn first() { a[0] = 1u; }
            @compute @workgroup_size(1) fn second() { b[0] = 1u; }";
        let first = check(source, "first", 10, NONE).unwrap();
        assert_eq!((first.bindings, first.workgroup_invocations), (vec![0], 32));
        assert_eq!(check(source, "second", 10, NONE).unwrap().bindings, [1]);
    }

    #[test]
    fn call_trees_that_would_run_for_ever_are_refused() {
        let mut source =
            String::from("@group(0) @binding(0) var<storage, read_write> a: array<u32>;\nfn f0() { a[0] += 1u; }\n");
        for i in 1..40 {
            source.push_str(&format!("fn f{i}() {{ f{}(); f{}(); }}\n", i - 1, i - 1));
        }
        source.push_str("@compute @workgroup_size(1) fn main() { f39(); }");
        let err = check(&source, "main", 10, NONE).err().unwrap();
        assert!(err.contains("with its calls inlined"), "{err}");
        let huge = "x".repeat(MAX_SOURCE + 1);
        assert!(check(&huge, "main", 10, NONE).err().unwrap().contains("accepted"));
    }

    #[test]
    fn bad_shaders_are_refused_with_the_validators_words() {
        let err = check("fn main( {", "main", 10, NONE).err().unwrap();
        assert!(err.contains("expected"), "{err}");
        let err = check(ADD, "other", 10, NONE).err().unwrap();
        assert!(err.contains("no entry point `other`") && err.contains("main"), "{err}");
        let vertex = "@vertex fn v() -> @builtin(position) vec4<f32> { return vec4<f32>(0.0); }";
        assert!(check(vertex, "v", 10, NONE).err().unwrap().contains("only compute shaders"));
        let texture = "@group(0) @binding(0) var t: texture_2d<f32>;
            @compute @workgroup_size(1) fn main() { _ = textureDimensions(t); }";
        assert!(check(texture, "main", 10, NONE).err().unwrap().contains("not a buffer"));
        let group = "@group(1) @binding(0) var<storage, read_write> a: array<u32>;
            @compute @workgroup_size(1) fn main() { a[0] = 1u; }";
        assert!(check(group, "main", 10, NONE).err().unwrap().contains("group 0"));
        let types = "@compute @workgroup_size(1) fn main() { let x: u32 = 1.5; }";
        let err = check(types, "main", 10, NONE).err().unwrap();
        assert!(err.contains("error"), "{err}");
    }
}
