; A function of our own for the C-ABI test: f(x, y) = x * sin(y) + exp(x) / y
define double @f(double %x, double %y) {
entry:
  %s = call double @llvm.sin.f64(double %y)
  %a = fmul double %x, %s
  %e = call double @llvm.exp.f64(double %x)
  %b = fdiv double %e, %y
  %r = fadd double %a, %b
  ret double %r
}
declare double @llvm.sin.f64(double)
declare double @llvm.exp.f64(double)
