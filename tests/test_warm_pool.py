"""Children started ahead of need (engine/warm.py), in real jails: each serves one submission,
nothing of one submission reaches the next, and batch gives the points of the old path."""
import os
import signal

from submissions.catalogue import render, write

from autograder import lessons
from autograder.engine import submission
from autograder.engine.grading import grade
from autograder.engine.sandbox import Limits
from autograder.engine.warm import Warm
from autograder.frontends.batch import grade_folder

LESSON = lessons.get("01_mnist_dnn")
STARTUP_S = 300  # a bound against hanging only: a loaded machine may take long to start a jail

# In the jail, this student swaps the grader's export for one whose archive asks torch to
# unpickle a weight: loading it runs the student's payload in the clean child (it sets torch's
# default dtype, which would break the next evaluation in that child).
POISON = '''

class Poison:
    import io, json, zipfile
    from autograder.lessons.common import graphs

    class Payload:
        def __reduce__(self):
            return (eval, ("__import__('torch').set_default_dtype(__import__('torch').float64)"
                           " or __import__('torch').zeros(1)",))

    def poisoned(model, example, *args, _export=graphs.export, _payload=Payload(), **kwargs):
        import io, json, zipfile
        out = _export(model, example, *args, **kwargs)
        if "blob" not in out:
            return out
        source, buffer = zipfile.ZipFile(io.BytesIO(out["blob"].numpy().tobytes())), io.BytesIO()
        config = [n for n in source.namelist() if n.endswith("model_weights_config.json")][0]
        weights = json.loads(source.read(config))
        first = next(iter(weights["config"].values()))
        first["use_pickle"] = True
        with zipfile.ZipFile(buffer, "w") as target:
            for name in source.namelist():
                data = source.read(name)
                if name == config:
                    data = json.dumps(weights).encode()
                elif name.endswith("/" + first["path_name"]):
                    pickled = io.BytesIO()
                    torch.save(_payload, pickled)
                    data = pickled.getvalue()
                target.writestr(name, data)
        return {"blob": torch.frombuffer(bytearray(buffer.getvalue()), dtype=torch.uint8)}

    graphs.export = poisoned
'''


def verdicts(report) -> list:
    """Each check's verdict and points (messages may quote figures that depend on the secret
    drawn for each grading, such as a test accuracy of 95.19% or 95.20%)."""
    return [(r.check.id, r.passed, r.score) for r in report.results]


def started(warm: Warm, role: str = "student") -> None:
    with warm.changed:
        assert warm.changed.wait_for(lambda: warm.ready[role], timeout=STARTUP_S), \
            f"no {role} child started ahead"


def test_a_started_jail_serves_one_submission_only(jail_isolation, tmp_path):
    plan = submission.load(write("reference", tmp_path)).plan()
    with Warm(LESSON, Limits(), size=1) as warm:
        started(warm)
        first = warm.student(plan)
        second = warm.student(plan)
        try:
            assert first is not second and first.workdir != second.workdir
            assert first.proc.pid != second.proc.pid
            assert first.jail.uid != second.jail.uid or not jail_isolation.own_uid
            assert first.started and second.started  # both had imported torch ahead
        finally:
            first.close()
            second.close()


def test_a_jail_that_dies_while_waiting_is_replaced(jail_isolation, tmp_path):
    path = write("reference", tmp_path)
    alone = grade(path, LESSON)
    with Warm(LESSON, Limits(), size=1) as warm:
        started(warm)
        dead = warm.ready["student"][0]
        os.kill(dead.proc.pid, signal.SIGKILL)
        dead.proc.wait()
        report = grade(path, LESSON, warm=warm)
        assert dead.proc is None  # discarded (closed), not handed out
    assert verdicts(report) == verdicts(alone)


def test_one_submission_cannot_reach_the_next_through_its_clean_child(jail_isolation,
                                                                       tmp_path):
    """A poisoned exported program and a rejected one, then the reference, all through one
    pool: the reference gets exactly the verdicts it gets alone."""
    reference = write("reference", tmp_path)
    poisoned = tmp_path / "poisoned.py"
    poisoned.write_text(render("reference") + POISON)
    rejected = tmp_path / "rejected.py"  # forward indexes a table: not on the allow-list
    rejected.write_text(render("reference").replace(
        "        return self.out(x)", "        x = x[:, torch.arange(x.shape[1])]\n"
                                     "        return self.out(x)"))
    alone = grade(reference, LESSON)
    with Warm(LESSON, Limits(), size=1, expected=4) as warm:
        attacked = grade(poisoned, LESSON, warm=warm)
        after_poison = grade(reference, LESSON, warm=warm)
        refused = grade(rejected, LESSON, warm=warm)
        after_rejected = grade(reference, LESSON, warm=warm)
    assert not attacked.passed and not refused.passed
    assert any("does not allow" in r.message for r in refused.results)
    assert verdicts(after_poison) == verdicts(alone)
    assert verdicts(after_rejected) == verdicts(alone)


def test_batch_gives_the_same_points_however_its_children_start(jail_isolation,
                                                                      tmp_path):
    folder = tmp_path / "class"
    folder.mkdir()
    for name in ("reference", "softmax_dim0", "linear_model"):
        write(name, folder)
    (folder / "empty.py").write_text("x = 1\n")

    def rows(children: str, workers: int) -> list:
        out = tmp_path / f"{children}-{workers}" / "grades.csv"
        out.parent.mkdir()
        results = grade_folder(folder, out, workers=workers, children=children, force=True)
        return [{k: v for k, v in r["row"].items() if k != "seconds"} for r in results]

    old = rows("each", 1)
    assert rows("ahead", 1) == old
    assert rows("ahead", 2) == old
    assert rows("fork", 1) == old
    assert rows("fork", 2) == old


def test_children_start_ahead_by_default_only_where_a_core_is_left_for_them():
    from autograder.frontends.batch import starts_ahead

    assert starts_ahead(1, cores=2) and starts_ahead(3, cores=8)
    assert not starts_ahead(2, cores=2) and not starts_ahead(4, cores=2)
