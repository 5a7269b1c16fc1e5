# A minimal JSON reader and writer for the GradBench tool, which speaks JSON lines on
# stdin and stdout. The package depends on the standard library only (and no package
# registry is reachable where it is tested), so this stands in for JSON.jl.
#
# Reading: objects become Dict{String,Any}, arrays Vector{Any}, numbers Int when the
# literal has no fraction or exponent (and fits), Float64 otherwise; strings, true,
# false and null (nothing). Writing: dictionaries and named tuples (written in field
# order, so responses read naturally) as objects, vectors and tuples as arrays, floats
# in the shortest form that reads back to the same Float64, non-finite floats as null.
module GradBenchJSON

export parse_json, json

"""
    parse_json(text) -> Any

The value of the JSON document `text`; an `ArgumentError` naming the offset if `text`
is not exactly one JSON value (surrounding whitespace allowed).
"""
function parse_json(text::AbstractString)
    r = Reader(String(text), 1)
    value = read_value(r)
    skip_space(r)
    r.pos <= ncodeunits(r.text) && fail(r, "unexpected text after the value")
    return value
end

# Positions are byte offsets: every byte JSON's syntax cares about is ASCII, and the
# bytes of multi-byte characters are copied through unchanged.
mutable struct Reader
    text::String
    pos::Int
end

fail(r::Reader, what) = throw(ArgumentError("invalid JSON at byte $(r.pos): $what"))

peek_byte(r::Reader) = r.pos <= ncodeunits(r.text) ? codeunit(r.text, r.pos) : 0x00

function skip_space(r::Reader)
    while r.pos <= ncodeunits(r.text) && codeunit(r.text, r.pos) in (0x20, 0x09, 0x0a, 0x0d)
        r.pos += 1
    end
end

function expect_word(r::Reader, word::String, value)
    stop = r.pos + ncodeunits(word) - 1
    stop <= ncodeunits(r.text) && view(codeunits(r.text), r.pos:stop) == codeunits(word) ||
        fail(r, "expected `$word`")
    r.pos = stop + 1
    return value
end

function read_value(r::Reader)
    skip_space(r)
    b = peek_byte(r)
    b == UInt8('{') && return read_object(r)
    b == UInt8('[') && return read_array(r)
    b == UInt8('"') && return read_string(r)
    b == UInt8('t') && return expect_word(r, "true", true)
    b == UInt8('f') && return expect_word(r, "false", false)
    b == UInt8('n') && return expect_word(r, "null", nothing)
    (b == UInt8('-') || UInt8('0') <= b <= UInt8('9')) && return read_number(r)
    fail(r, b == 0x00 ? "unexpected end of input" : "unexpected character")
end

function read_object(r::Reader)
    r.pos += 1
    obj = Dict{String,Any}()
    skip_space(r)
    if peek_byte(r) == UInt8('}')
        r.pos += 1
        return obj
    end
    while true
        skip_space(r)
        peek_byte(r) == UInt8('"') || fail(r, "expected a string key")
        key = read_string(r)
        skip_space(r)
        peek_byte(r) == UInt8(':') || fail(r, "expected `:`")
        r.pos += 1
        obj[key] = read_value(r)
        skip_space(r)
        b = peek_byte(r)
        r.pos += 1
        b == UInt8('}') && return obj
        b == UInt8(',') || (r.pos -= 1; fail(r, "expected `,` or `}`"))
    end
end

function read_array(r::Reader)
    r.pos += 1
    arr = Any[]
    skip_space(r)
    if peek_byte(r) == UInt8(']')
        r.pos += 1
        return arr
    end
    while true
        push!(arr, read_value(r))
        skip_space(r)
        b = peek_byte(r)
        r.pos += 1
        b == UInt8(']') && return arr
        b == UInt8(',') || (r.pos -= 1; fail(r, "expected `,` or `]`"))
    end
end

const NUMBER = r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?"

function read_number(r::Reader)
    m = match(NUMBER, r.text, r.pos)
    (m === nothing || m.offset != r.pos) && fail(r, "malformed number")
    literal = m.match
    r.pos += ncodeunits(literal)
    if m.captures[2] === nothing && m.captures[3] === nothing
        i = tryparse(Int, literal)
        i === nothing || return i
    end
    return parse(Float64, literal)
end

function read_hex4(r::Reader)
    r.pos + 3 <= ncodeunits(r.text) || fail(r, "truncated \\u escape")
    code = 0x0000
    for _ in 1:4
        b = codeunit(r.text, r.pos)
        digit = UInt8('0') <= b <= UInt8('9') ? b - UInt8('0') :
                UInt8('a') <= b <= UInt8('f') ? b - UInt8('a') + 0x0a :
                UInt8('A') <= b <= UInt8('F') ? b - UInt8('A') + 0x0a : fail(r, "malformed \\u escape")
        code = code << 4 | digit
        r.pos += 1
    end
    return code
end

const ESCAPES = Dict(UInt8('"') => '"', UInt8('\\') => '\\', UInt8('/') => '/',
                     UInt8('b') => '\b', UInt8('f') => '\f', UInt8('n') => '\n',
                     UInt8('r') => '\r', UInt8('t') => '\t')

function read_string(r::Reader)
    r.pos += 1
    out = IOBuffer()
    text = r.text
    while true
        r.pos <= ncodeunits(text) || fail(r, "unterminated string")
        b = codeunit(text, r.pos)
        if b == UInt8('"')
            r.pos += 1
            return String(take!(out))
        elseif b == UInt8('\\')
            r.pos += 1
            e = peek_byte(r)
            r.pos += 1
            if e == UInt8('u')
                write(out, read_unicode_escape(r))
            else
                haskey(ESCAPES, e) || (r.pos -= 1; fail(r, "unknown escape"))
                write(out, ESCAPES[e])
            end
        elseif b < 0x20
            fail(r, "control character in string")
        else
            write(out, b)
            r.pos += 1
        end
    end
end

# UTF-16 surrogate pairs (`\ud83d\ude00`) combine into one character; a surrogate
# without its partner cannot be a Unicode character and reads as U+FFFD.
function read_unicode_escape(r::Reader)
    code = read_hex4(r)
    if 0xd800 <= code <= 0xdbff
        if peek_byte(r) == UInt8('\\') && r.pos + 1 <= ncodeunits(r.text) &&
           codeunit(r.text, r.pos + 1) == UInt8('u')
            save = r.pos
            r.pos += 2
            low = read_hex4(r)
            if 0xdc00 <= low <= 0xdfff
                return Char(0x10000 + (UInt32(code - 0xd800) << 10) + (low - 0xdc00))
            end
            r.pos = save
        end
        return '\ufffd'
    end
    0xdc00 <= code <= 0xdfff && return '\ufffd'
    return Char(code)
end

"""
    json(value) -> String

`value` as compact JSON text on one line. Accepts dictionaries (keys written with
`string`), named tuples, vectors and tuples, `Bool`, integers, floats, strings and
symbols, and `nothing` (null).
"""
json(value) = (io = IOBuffer(); write_json(io, value); String(take!(io)))

write_json(io::IO, ::Nothing) = print(io, "null")
write_json(io::IO, b::Bool) = print(io, b ? "true" : "false")
write_json(io::IO, i::Integer) = print(io, i)
# `repr` of a Float64 is the shortest text that parses back to the same number, and its
# forms (`-0.5`, `1.0e-300`) are valid JSON numbers; JSON has no NaN or infinities.
write_json(io::IO, x::AbstractFloat) = print(io, isfinite(x) ? repr(Float64(x)) : "null")
write_json(io::IO, s::Symbol) = write_json(io, String(s))

function write_json(io::IO, s::AbstractString)
    print(io, '"')
    for c in s
        if c == '"'
            print(io, "\\\"")
        elseif c == '\\'
            print(io, "\\\\")
        elseif c == '\n'
            print(io, "\\n")
        elseif c == '\r'
            print(io, "\\r")
        elseif c == '\t'
            print(io, "\\t")
        elseif c < ' ' || c == '\x7f'
            print(io, "\\u", string(UInt32(c); base = 16, pad = 4))
        else
            print(io, c)
        end
    end
    print(io, '"')
end

function write_json(io::IO, items::Union{AbstractVector,Tuple})
    print(io, '[')
    for (k, item) in enumerate(items)
        k > 1 && print(io, ',')
        write_json(io, item)
    end
    print(io, ']')
end

write_json(io::IO, obj::AbstractDict) = write_object(io, pairs(obj))
write_json(io::IO, obj::NamedTuple) = write_object(io, pairs(obj))

function write_object(io::IO, entries)
    print(io, '{')
    first = true
    for (key, value) in entries
        first || print(io, ',')
        first = false
        write_json(io, string(key))
        print(io, ':')
        write_json(io, value)
    end
    print(io, '}')
end

write_json(io::IO, value) = throw(ArgumentError("cannot write a $(typeof(value)) as JSON"))

end # module
