@test Forward isa Oxidase.ForwardMode
@test Reverse isa Oxidase.ReverseMode{false}
@test ReverseWithPrimal isa Oxidase.ReverseMode{true}
@test Forward isa Oxidase.Mode && Reverse isa Oxidase.Mode
@test Oxidase.mode_code(Forward) == 0
@test Oxidase.mode_code(Reverse) == Oxidase.mode_code(ReverseWithPrimal) == 1
