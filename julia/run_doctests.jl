# Runs the examples of the documentation and checks what they print.
#
#   julia --project=. julia/run_doctests.jl [DOCS_DIR]
#
# Every ```julia-repl block of DOCS_DIR/*.md (default: docs/) is a REPL transcript:
# `julia> ` starts an input, following lines indented by seven spaces continue it, and
# the lines up to the next input or the end of the block are the expected output, as
# the REPL shows it (`show` with MIME"text/plain"). An input ending with `;` or
# returning `nothing` expects no output; an expected output starting with `ERROR:` expects
# that exception, compared on as many lines as the documentation shows (stack traces are
# left out). An expected line ending in `...` matches any line that starts with what
# precedes it (for text that depends on where the example runs, such as file names).
# Trailing whitespace is ignored. Each file runs in its own fresh module that
# did `using Oxidase`, so definitions carry over between the blocks of one file only.
#
# Standard library only, so that it runs wherever the package does (no Documenter).
module DocTests

export run_doctests

const PROMPT = "julia> "
const CONTINUATION = " "^length(PROMPT)

"""
    Example(file, line, input, expected)

One `julia> ` input of a documentation page and the output the page shows for it.
"""
struct Example
    file::String
    line::Int
    input::String
    expected::String
end

"""
    examples(path) -> Vector{Example}

The REPL examples of the ```julia-repl blocks of the Markdown file at `path`.
"""
function examples(path::AbstractString)
    lines = readlines(path)
    found = Example[]
    in_block = false
    i = 1
    while i <= length(lines)
        line = lines[i]
        if !in_block
            in_block = rstrip(line) == "```julia-repl"
            i += 1
        elseif startswith(line, "```")
            in_block = false
            i += 1
        elseif startswith(line, PROMPT)
            start = i
            input = [line[length(PROMPT)+1:end]]
            i += 1
            while i <= length(lines) && startswith(lines[i], CONTINUATION)
                push!(input, lines[i][length(CONTINUATION)+1:end])
                i += 1
            end
            output = String[]
            while i <= length(lines) && !startswith(lines[i], PROMPT) && !startswith(lines[i], "```")
                push!(output, lines[i])
                i += 1
            end
            push!(found, Example(path, start, join(input, "\n"), join(output, "\n")))
        else
            # Text before the first prompt of a block is not part of any example.
            i += 1
        end
    end
    return found
end

normalize(text) = strip(join(rstrip.(split(text, '\n')), '\n'), '\n')

# The REPL hides the result of an input ending in `;` (ignoring a trailing comment).
function ends_with_semicolon(input::AbstractString)
    code = rstrip(split(input, '\n')[end])
    if !occursin('"', code)   # without strings, a `#` starts the comment
        code = rstrip(split(code, '#'; limit = 2)[1])
    end
    return endswith(code, ';')
end

function shown(mod::Module, value)
    buf = IOBuffer()
    show(IOContext(buf, :limit => true, :module => mod), MIME"text/plain"(), value)
    return String(take!(buf))
end

"""
    evaluate(mod, example) -> String

What the REPL would print for `example` evaluated in `mod`: the shown value, nothing,
or `ERROR: ` and the exception's message.
"""
#
# Printing goes through `invokelatest`: the `show` and `showerror` methods of the
# examples (and of Oxidase itself, loaded after this runner started) are newer than the
# world this function runs in.
function evaluate(mod::Module, ex::Example)
    try
        value = Base.include_string(mod, ex.input, "$(ex.file):$(ex.line)")
        ends_with_semicolon(ex.input) || value === nothing ? "" :
            Base.invokelatest(shown, mod, value)
    catch err
        while err isa LoadError
            err = err.error
        end
        return "ERROR: " * Base.invokelatest(sprint, showerror, err)
    end
end

line_matches(want, got) = endswith(want, "...") ? startswith(got, chop(want; tail = 3)) : want == got

function matches(expected::AbstractString, actual::AbstractString)
    want_lines = split(normalize(expected), '\n')
    got_lines = split(normalize(actual), '\n')
    if startswith(want_lines[1], "ERROR:")
        length(got_lines) >= length(want_lines) || return false
        got_lines = got_lines[1:length(want_lines)]
    end
    length(want_lines) == length(got_lines) || return false
    return all(line_matches(w, g) for (w, g) in zip(want_lines, got_lines))
end

function report_failure(io::IO, ex::Example, actual::AbstractString)
    println(io, "FAILED ", ex.file, ":", ex.line)
    println(io, "  input:")
    foreach(l -> println(io, "    ", l), split(ex.input, '\n'))
    println(io, "  expected:")
    foreach(l -> println(io, "    ", l), split(normalize(ex.expected), '\n'))
    println(io, "  got:")
    foreach(l -> println(io, "    ", l), split(normalize(actual), '\n'))
end

"""
    run_doctests(dir; io = stdout) -> (passed, failed)

Runs the examples of every `*.md` file of `dir`, reports each failure on `io` and ends
with the line `N passed, M failed`.
"""
function run_doctests(dir::AbstractString; io::IO = stdout)
    passed = failed = 0
    for name in sort(filter(f -> endswith(f, ".md"), readdir(dir)))
        path = joinpath(dir, name)
        mod = Module(Symbol("DocTest_", splitext(name)[1]))
        Core.eval(mod, :(using Oxidase))
        for ex in examples(path)
            actual = evaluate(mod, ex)
            if matches(ex.expected, actual)
                passed += 1
            else
                failed += 1
                report_failure(io, ex, actual)
            end
            flush(io)
        end
    end
    println(io, passed, " passed, ", failed, " failed")
    flush(io)
    return passed, failed
end

end # module

if abspath(PROGRAM_FILE) == @__FILE__
    dir = isempty(ARGS) ? joinpath(@__DIR__, "..", "docs") : ARGS[1]
    _, failed = DocTests.run_doctests(dir)
    exit(failed == 0 ? 0 : 1)
end
