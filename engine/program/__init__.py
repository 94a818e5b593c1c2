"""The program: seed format (models), loading and validation (loader), and
the compiled form the rules engine runs (program)."""

from engine.program.loader import load_program, program_json_schema
from engine.program.program import MetricDef, Program

__all__ = ["MetricDef", "Program", "load_program", "program_json_schema"]
