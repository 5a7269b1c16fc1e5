# Annotations mirror Enzyme.jl 0.11: same names, fields and type parameters.

@test Const(2).val === 2
@test Active(1.5).val === 1.5
@test Active(1) === Active(1.0)          # integers become floats, as in Enzyme
@test Active(1.5f0) isa Active{Float32}
d = Duplicated(1.0, 2.0)
@test (d.val, d.dval) === (1.0, 2.0)
@test d isa Oxidase.Annotation{Float64}
@test DuplicatedNoNeed(1.0, 2.0).dval === 2.0
b = BatchDuplicated(1.0, (1.0, 0.0))
@test b isa BatchDuplicated{Float64,2}
@test b.dval === (1.0, 0.0)
@test BatchDuplicatedNoNeed(1.0, (1.0, 0.0, 2.0)) isa BatchDuplicatedNoNeed{Float64,3}
@test eltype(Duplicated{Float32}) === Float32
@test_throws MethodError Duplicated(1.0, 2)   # shadow and primal share a type

# Plain arguments are constants.
@test Oxidase.annotate(3.0) === Const(3.0)
@test Oxidase.annotate(Active(3.0)) === Active(3.0)
@test Oxidase.is_batch(b) && !Oxidase.is_batch(d)
