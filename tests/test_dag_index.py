"""The networkx DAG index: ancestry, lineage, heads, common ancestors; loaded from the store."""

from __future__ import annotations

import pytest

from dag.index import DagIndex
from dag.store import Store
from protocol import examples

from .dag_factories import make_commit


@pytest.fixture
def dag(tmp_path):
    """target ─ a ─ b ─ d(merge of b, c) ; a ─ c ; target ─ x."""
    target = examples.target()
    a = make_commit(target, [target.cid], 1)
    b = make_commit(target, [a.cid], 2)
    c = make_commit(target, [a.cid], 3)
    d = make_commit(target, [b.cid, c.cid], 4)
    x = make_commit(target, [target.cid], 5)
    with Store(tmp_path / "s.sqlite") as store:
        store.put_many([target, a, b, c, d, x])
        yield DagIndex.load(store, target.cid), target, {"a": a, "b": b, "c": c, "d": d, "x": x}


def test_structure_queries(dag):
    index, target, c = dag
    cid = {k: v.cid for k, v in c.items()}
    assert len(index) == 5
    assert index.heads() == sorted([cid["d"], cid["x"]])
    assert index.children(cid["a"]) == sorted([cid["b"], cid["c"]])
    assert index.ancestors(cid["d"]) == {target.cid, cid["a"], cid["b"], cid["c"]}
    assert index.lineage(cid["d"]) == [cid["d"], cid["b"], cid["a"], target.cid]
    assert index.is_ancestor(cid["a"], cid["d"]) and not index.is_ancestor(cid["x"], cid["d"])


def test_common_ancestor_is_the_lowest_shared_commit(dag):
    index, target, c = dag
    cid = {k: v.cid for k, v in c.items()}
    assert index.common_ancestor(cid["b"], cid["c"]) == cid["a"]
    assert index.common_ancestor(cid["d"], cid["x"]) == target.cid
    assert index.common_ancestor(cid["a"], cid["d"]) == cid["a"]
    assert index.common_ancestor(cid["d"], cid["c"]) == cid["c"]


def test_criss_cross_picks_the_lowest_cid_among_equals(tmp_path):
    target = examples.target()
    a = make_commit(target, [target.cid], 1)
    b = make_commit(target, [target.cid], 2)
    m1 = make_commit(target, [a.cid, b.cid], 3)
    m2 = make_commit(target, [b.cid, a.cid], 4)
    index = DagIndex(target.cid)
    for commit in (a, b, m1, m2):
        index.add(commit.cid, commit.parents)
    assert index.common_ancestor(m1.cid, m2.cid) == min(a.cid, b.cid)


def test_adding_a_commit_before_its_parent_is_refused():
    target = examples.target()
    a = make_commit(target, [target.cid], 1)
    b = make_commit(target, [a.cid], 2)
    index = DagIndex(target.cid)
    with pytest.raises(KeyError, match="not in the DAG"):
        index.add(b.cid, b.parents)
