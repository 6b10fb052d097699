"""A small UCUM parser: enough of the grammar to say whether a unit code is valid and to
convert between commensurable units.

It covers the UCUM syntax (prefixes on metric atoms, integer exponents, ``.`` and ``/``,
a leading ``/``, parentheses, ``{annotations}``, integer factors such as ``10*3``) over
an atom table holding the units clinical data uses, not the whole UCUM essence. An atom
missing from the table reads as "does not parse", which is the safe side for a quality
check: a real but rare unit is reported, not silently accepted.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from medfusion.errors import InvalidRequestError

__all__ = ["UcumUnit", "parse_ucum", "ucum_conversion"]

# Dimensions: length, mass, time, angle, temperature, charge, luminosity, amount of
# substance (kept apart from "1" although UCUM makes mol dimensionless, so that mass and
# molar concentrations only meet through a molar mass), and [pH] as a dimension of its own.
_DIMS = ("L", "M", "T", "A", "C", "Q", "F", "N", "pH")
Dims = tuple[int, ...]


def _d(**exps: int) -> Dims:
    return tuple(exps.get(name, 0) for name in _DIMS)


_ONE = _d()


@dataclass(frozen=True)
class _Atom:
    factor: float
    dims: Dims
    metric: bool  # whether prefixes are allowed
    special: bool = False  # non-ratio scale (Cel, [degF]): only on its own, no prefix or power


_ATOMS: dict[str, _Atom] = {
    # base units
    "m": _Atom(1.0, _d(L=1), True),
    "s": _Atom(1.0, _d(T=1), True),
    "g": _Atom(1.0, _d(M=1), True),
    "rad": _Atom(1.0, _d(A=1), True),
    "K": _Atom(1.0, _d(C=1), True),
    "C": _Atom(1.0, _d(Q=1), True),
    "cd": _Atom(1.0, _d(F=1), True),
    # SI and clinical derived units
    "mol": _Atom(1.0, _d(N=1), True),
    "eq": _Atom(1.0, _d(N=1), True),
    "osm": _Atom(1.0, _d(N=1), True),
    "kat": _Atom(1.0, _d(N=1, T=-1), True),
    "U": _Atom(1e-6 / 60.0, _d(N=1, T=-1), True),
    "L": _Atom(1e-3, _d(L=3), True),
    "l": _Atom(1e-3, _d(L=3), True),
    "Hz": _Atom(1.0, _d(T=-1), True),
    "N": _Atom(1000.0, _d(M=1, L=1, T=-2), True),
    "Pa": _Atom(1000.0, _d(M=1, L=-1, T=-2), True),
    "bar": _Atom(1e8, _d(M=1, L=-1, T=-2), True),
    "J": _Atom(1000.0, _d(M=1, L=2, T=-2), True),
    "W": _Atom(1000.0, _d(M=1, L=2, T=-3), True),
    "A": _Atom(1.0, _d(Q=1, T=-1), True),
    "V": _Atom(1000.0, _d(M=1, L=2, T=-2, Q=-1), True),
    "Ohm": _Atom(1000.0, _d(M=1, L=2, T=-1, Q=-2), True),
    "cal": _Atom(4184.0, _d(M=1, L=2, T=-2), True),
    "m[Hg]": _Atom(133322.0 * 1000.0, _d(M=1, L=-1, T=-2), True),
    "m[H2O]": _Atom(9806.65 * 1000.0, _d(M=1, L=-1, T=-2), True),
    "[iU]": _Atom(1.0, _d(), True),
    "[IU]": _Atom(1.0, _d(), True),
    "Cel": _Atom(1.0, _d(C=1), True, special=True),
    # non-metric
    "min": _Atom(60.0, _d(T=1), False),
    "h": _Atom(3600.0, _d(T=1), False),
    "d": _Atom(86400.0, _d(T=1), False),
    "wk": _Atom(7 * 86400.0, _d(T=1), False),
    "mo": _Atom(365.25 * 86400.0 / 12.0, _d(T=1), False),
    "a": _Atom(365.25 * 86400.0, _d(T=1), False),
    "%": _Atom(0.01, _ONE, False),
    "[ppm]": _Atom(1e-6, _ONE, False),
    "[ppth]": _Atom(1e-3, _ONE, False),
    "[pH]": _Atom(1.0, _d(pH=1), False, special=True),
    "[degF]": _Atom(5.0 / 9.0, _d(C=1), False, special=True),
    "[lb_av]": _Atom(453.59237, _d(M=1), False),
    "[oz_av]": _Atom(28.349523125, _d(M=1), False),
    "[in_i]": _Atom(0.0254, _d(L=1), False),
    "[ft_i]": _Atom(0.3048, _d(L=1), False),
    "[mi_i]": _Atom(1609.344, _d(L=1), False),
    "[drp]": _Atom(5e-8, _d(L=3), False),
    "[hp'_X]": _Atom(1.0, _ONE, False),
    "[arb'U]": _Atom(1.0, _ONE, False),
    "10*": _Atom(10.0, _ONE, False),
    "10^": _Atom(10.0, _ONE, False),
    "deg": _Atom(3.141592653589793 / 180.0, _d(A=1), False),
}

_PREFIXES: dict[str, float] = {
    "Y": 1e24, "Z": 1e21, "E": 1e18, "P": 1e15, "T": 1e12, "G": 1e9, "M": 1e6, "k": 1e3,
    "h": 1e2, "da": 1e1, "d": 1e-1, "c": 1e-2, "m": 1e-3, "u": 1e-6, "n": 1e-9, "p": 1e-12,
    "f": 1e-15, "a": 1e-18, "z": 1e-21, "y": 1e-24,
}  # fmt: skip

# Offsets of the special units, in kelvin: K = factor * value + offset.
_OFFSETS = {"Cel": 273.15, "[degF]": 273.15 - 32.0 * 5.0 / 9.0}


@dataclass(frozen=True)
class UcumUnit:
    """A parsed unit: ``value in base units = factor * value (+ offset for special units)``.

    Attributes
    ----------
    code
        The UCUM code as written.
    factor
        Magnitude relative to the coherent base units (g, not kg, is UCUM's base of mass).
    dims
        Exponents of the base dimensions.
    offset
        Non-zero only for the special temperature units (Cel, [degF]).
    """

    code: str
    factor: float
    dims: Dims
    offset: float = 0.0


class _Parser:
    def __init__(self, code: str) -> None:
        self.code = code
        self.pos = 0

    def fail(self, why: str) -> InvalidRequestError:
        return InvalidRequestError(f"'{self.code}' is not a valid UCUM unit: {why} at position {self.pos}")

    def peek(self) -> str:
        return self.code[self.pos] if self.pos < len(self.code) else ""

    def term(self) -> tuple[float, Dims]:
        factor, dims = 1.0, _ONE
        if self.peek() == "/":  # a leading '/' as in "/min"
            self.pos += 1
            f, d = self.component()
            factor, dims = 1.0 / f, _scale(d, -1)
        else:
            factor, dims = self.component()
        while self.peek() in (".", "/"):
            op = self.code[self.pos]
            self.pos += 1
            f, d = self.component()
            if op == ".":
                factor, dims = factor * f, _add(dims, d)
            else:
                factor, dims = factor / f, _add(dims, _scale(d, -1))
        return factor, dims

    def component(self) -> tuple[float, Dims]:
        char = self.peek()
        if char == "(":
            self.pos += 1
            result = self.term()
            if self.peek() != ")":
                raise self.fail("unclosed '('")
            self.pos += 1
            self.annotation()
            return result
        if char == "{":
            self.annotation()
            return 1.0, _ONE
        if char.isdigit():
            start = self.pos
            while self.peek().isdigit():
                self.pos += 1
            if self.peek() not in ("*", "^"):  # a plain integer factor, e.g. the 24 of "/24.h"
                self.annotation()
                return float(self.code[start : self.pos]), _ONE
            self.pos = start
        return self.annotatable()

    def annotation(self) -> None:
        if self.peek() != "{":
            return
        end = self.code.find("}", self.pos)
        if end < 0:
            raise self.fail("unclosed '{'")
        body = self.code[self.pos + 1 : end]
        if "{" in body or any(not 33 <= ord(c) <= 126 for c in body if c != " "):
            raise self.fail("bad character in an annotation")
        self.pos = end + 1

    def annotatable(self) -> tuple[float, Dims]:
        start = self.pos
        # The symbol runs to the next operator, exponent or annotation; brackets may hold
        # anything (e.g. "[lb_av]", "m[Hg]").
        if self.code.startswith(("10*", "10^"), self.pos):
            self.pos += 3
        while self.pos < len(self.code):
            char = self.code[self.pos]
            if char == "[":
                end = self.code.find("]", self.pos)
                if end < 0:
                    raise self.fail("unclosed '['")
                self.pos = end + 1
                continue
            if char in "./(){}+-" or char.isdigit() or self.code[start : self.pos] in ("10*", "10^"):
                break
            self.pos += 1
        symbol = self.code[start : self.pos]
        if not symbol:
            raise self.fail("a unit symbol is expected")
        factor, dims, name = self.symbol(symbol)
        exponent = 1
        if self.peek() and (self.peek() in "+-" or self.peek().isdigit()):
            sign = -1 if self.peek() == "-" else 1
            if self.peek() in "+-":
                self.pos += 1
            digits = self.pos
            while self.peek().isdigit():
                self.pos += 1
            if digits == self.pos:
                raise self.fail("an exponent is expected")
            exponent = sign * int(self.code[digits : self.pos])
        if _ATOMS[name].special:
            raise self.fail(f"'{name}' cannot be combined with other units")
        self.annotation()
        return factor**exponent, _scale(dims, exponent)

    def symbol(self, symbol: str) -> tuple[float, Dims, str]:
        atom = _ATOMS.get(symbol)
        if atom is not None:
            return atom.factor, atom.dims, symbol
        for prefix in sorted(_PREFIXES, key=len, reverse=True):
            rest = symbol[len(prefix) :]
            if symbol.startswith(prefix) and rest in _ATOMS:
                base = _ATOMS[rest]
                if not base.metric or base.special:
                    raise self.fail(f"'{rest}' takes no prefix")
                return _PREFIXES[prefix] * base.factor, base.dims, rest
        raise self.fail(f"unknown unit '{symbol}'")


def _add(a: Dims, b: Dims) -> Dims:
    return tuple(x + y for x, y in zip(a, b, strict=True))


def _scale(a: Dims, k: int) -> Dims:
    return tuple(x * k for x in a)


@cache
def parse_ucum(code: str) -> UcumUnit:
    """Parse a UCUM code (case-sensitive form).

    Parameters
    ----------
    code
        e.g. ``"mg/dL"``, ``"10*3/uL"``, ``"mL/min/{1.73_m2}"``, ``"kg/m2"``, ``"[degF]"``.

    Raises
    ------
    InvalidRequestError
        The code does not parse, naming the position and the reason.
    """
    if not code or code != code.strip() or " " in code:
        raise InvalidRequestError(f"'{code}' is not a valid UCUM unit: empty or holds spaces")
    special = _ATOMS.get(code)
    if special is not None and special.special:
        # Non-ratio units stand alone: "Cel/h" or "[degF]2" mean nothing.
        return UcumUnit(code, special.factor, special.dims, _OFFSETS.get(code, 0.0))
    parser = _Parser(code)
    factor, dims = parser.term()
    if parser.pos != len(code):
        raise parser.fail(f"unexpected '{code[parser.pos]}'")
    return UcumUnit(code, factor, dims)


def ucum_conversion(from_unit: str, to_unit: str, molar_mass: float | None = None) -> tuple[float, float]:
    """``(scale, offset)`` with ``to = from * scale + offset`` between two UCUM units.

    Parameters
    ----------
    from_unit, to_unit
        UCUM codes.
    molar_mass
        g/mol of the substance, to cross between mass and amount of substance
        (``mg/dL`` and ``mmol/L`` for glucose).

    Raises
    ------
    InvalidRequestError
        A code does not parse, or the units are not commensurable.
    """
    source, target = parse_ucum(from_unit), parse_ucum(to_unit)
    factor = source.factor
    mass, amount = _DIMS.index("M"), _DIMS.index("N")
    if source.dims != target.dims and molar_mass is not None:
        # g -> mol: divide by the molar mass for each unit of mass traded for amount.
        shift = source.dims[mass] - target.dims[mass]
        moved = list(source.dims)
        moved[mass] -= shift
        moved[amount] += shift
        if tuple(moved) == target.dims:
            return factor / molar_mass**shift / target.factor, 0.0
    if source.dims != target.dims:
        raise InvalidRequestError(f"units '{from_unit}' and '{to_unit}' measure different things")
    # base = f * x + o  =>  to = (fs * x + os - ot) / ft
    return factor / target.factor, (source.offset - target.offset) / target.factor
