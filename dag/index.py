"""The improvement DAG of one target as a graph (networkx), loaded from the store.

Edges point from parent to child. The store only admits a commit after its parents, so the graph
is always a DAG rooted at the target and every commit's lineage reaches it. Fork choice keeps its
own flat arrays (``dag.fork_choice``); this index answers the structural questions: ancestry,
lineage, heads, children, and the common ancestor a merge is built on.
"""

from __future__ import annotations

from collections.abc import Iterable

import networkx as nx

from protocol.cid import CID

from .store import Store


class DagIndex:
    def __init__(self, target: CID) -> None:
        self.target = target
        self.graph = nx.DiGraph()
        self.graph.add_node(target)
        self._first_parent: dict[CID, CID] = {}

    @classmethod
    def load(cls, store: Store, target: CID) -> DagIndex:
        index = cls(target)
        for commit, parents in store.commit_edges(target):
            index.add(commit, parents)
        return index

    def add(self, commit: CID, parents: Iterable[CID]) -> None:
        """Add a commit whose parents are already present (the store guarantees the order)."""
        parents = tuple(parents)
        missing = [p for p in parents if p not in self.graph]
        if missing:
            raise KeyError(f"{commit}: parent {missing[0]} is not in the DAG")
        self.graph.add_node(commit)
        self.graph.add_edges_from((p, commit) for p in parents)
        self._first_parent[commit] = parents[0]

    def __contains__(self, commit: object) -> bool:
        return commit in self.graph

    def __len__(self) -> int:
        """Number of commits, the target excluded."""
        return self.graph.number_of_nodes() - 1

    def parents(self, commit: CID) -> list[CID]:
        return list(self.graph.predecessors(commit))

    def children(self, commit: CID) -> list[CID]:
        return sorted(self.graph.successors(commit))

    def heads(self) -> list[CID]:
        """Commits nobody builds on (the target itself while the DAG is empty)."""
        return sorted(n for n in self.graph if self.graph.out_degree(n) == 0)

    def ancestors(self, commit: CID) -> set[CID]:
        """Every commit reachable through parent links (the target included), not ``commit``."""
        return nx.ancestors(self.graph, commit)

    def descendants(self, commit: CID) -> set[CID]:
        return nx.descendants(self.graph, commit)

    def is_ancestor(self, ancestor: CID, commit: CID) -> bool:
        return ancestor == commit or nx.has_path(self.graph, ancestor, commit)

    def lineage(self, commit: CID) -> list[CID]:
        """The first-parent path from ``commit`` back to the target, ``commit`` first."""
        path = [commit]
        while path[-1] != self.target:
            path.append(self._first_parent[path[-1]])
        return path

    def common_ancestor(self, a: CID, b: CID) -> CID:
        """A lowest common ancestor of two commits: the base a merge of them is built on.

        With several equally low candidates (criss-cross histories) the lowest CID is chosen so
        every node picks the same one.
        """
        if self.is_ancestor(a, b):
            return a
        if self.is_ancestor(b, a):
            return b
        common = (self.ancestors(a) | {a}) & (self.ancestors(b) | {b})
        # A common ancestor is lowest unless it is an ancestor of another common ancestor: one
        # upward walk from all of them marks every such one.
        above: set[CID] = set()
        frontier = [p for c in common for p in self.graph.predecessors(c)]
        while frontier:
            node = frontier.pop()
            if node not in above:
                above.add(node)
                frontier.extend(self.graph.predecessors(node))
        return min(common - above)
