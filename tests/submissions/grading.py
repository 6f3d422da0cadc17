"""A catalogue of submissions graded once, two at a time, as the catalogue tests use it."""
from concurrent.futures import ThreadPoolExecutor

from autograder.engine.grading import grade
from autograder.engine.sandbox import Limits


def grade_variants(variants, write, folder) -> dict:
    """name -> Report for each variant, written by `write(name, folder)`; hidden checks only for
    the variants whose hidden verdict is asserted (`hidden` not None)."""
    def one(variant):
        path = write(variant.name, folder)
        return grade(path, public_only=variant.hidden is None, limits=Limits(**variant.limits))

    with ThreadPoolExecutor(2) as pool:
        return dict(zip([v.name for v in variants], pool.map(one, variants)))


def messages(report) -> str:
    return "\n".join(r.summary() for r in report.results)
