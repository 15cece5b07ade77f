package syscalltrace

import (
	"math/rand"
	"sort"
	"testing"
)

// The tree against a sorted reference, through random inserts, replacements
// and deletes — with and without the seek that leaves a finger — on trees
// that grow to several levels and shrink back to empty.
func TestAddrTreeMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	for round, keySpace := range []int{50, 5000, 200000} {
		var tr addrTree
		ref := map[uint64]*Mapping{}
		grow := true // then drain
		check := func(step int) {
			keys := make([]uint64, 0, len(ref))
			for k := range ref {
				keys = append(keys, k)
			}
			sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
			var got []uint64
			tr.scan(func(m *Mapping) { got = append(got, m.Start) })
			if len(got) != len(keys) || tr.len() != len(keys) {
				t.Fatalf("round %d step %d: %d entries (len %d), want %d", round, step, len(got), tr.len(), len(keys))
			}
			for i := range keys {
				if got[i] != keys[i] {
					t.Fatalf("round %d step %d: entry %d is %d, want %d", round, step, i, got[i], keys[i])
				}
			}
			if nodes := countNodes(tr.root); !grow && nodes > len(keys)/8+8 {
				t.Fatalf("round %d step %d: %d nodes for %d entries: deletes left the tree sparse", round, step, nodes, len(keys))
			}
			if m, ok := tr.last(); ok != (len(keys) > 0) || ok && m.Start != keys[len(keys)-1] {
				t.Fatalf("round %d step %d: last %v %v", round, step, m, ok)
			}
			// Every seek lands on the first key ≥ its own, and before()
			// gives the one under it.
			for j := 0; j < 20; j++ {
				k := uint64(rng.Intn(keySpace + 2))
				i := sort.Search(len(keys), func(i int) bool { return keys[i] >= k })
				c := tr.seek(k)
				at := c
				if ok := c.valid(); ok != (i < len(keys)) || ok && c.key() != keys[i] {
					t.Fatalf("round %d step %d: seek(%d) wrong", round, step, k)
				}
				m, ok := at.before()
				if ok != (i > 0) || ok && m.Start != keys[i-1] {
					t.Fatalf("round %d step %d: before seek(%d) wrong", round, step, k)
				}
			}
		}
		steps := keySpace * 4
		for step := 0; step < steps; step++ {
			k := uint64(rng.Intn(keySpace))
			grow = step < steps/2
			if rng.Intn(3) == 0 {
				tr.seek(k) // the finger, for the next set or delete
			}
			if grow && rng.Intn(4) != 0 || !grow && rng.Intn(4) == 0 {
				m := &Mapping{Start: k}
				tr.set(k, m)
				ref[k] = m
			} else {
				tr.delete(k)
				delete(ref, k)
			}
			if step%(keySpace/10+1) == 0 {
				check(step)
			}
		}
		for k := range ref {
			tr.seek(k)
			tr.delete(k)
			delete(ref, k)
		}
		check(steps)
		if tr.first == nil || tr.first != tr.root || !tr.root.leaf() {
			t.Errorf("round %d: an emptied tree is not one empty leaf", round)
		}
	}
}

func countNodes(nd *treeNode) int {
	if nd == nil {
		return 0
	}
	n := 1
	for _, kid := range nd.kids {
		n += countNodes(kid)
	}
	return n
}

// Deleting all but a scattered few — the leaks among churn — leaves a tree
// the size of the few, not of what it once held.
func TestAddrTreeShrinks(t *testing.T) {
	var tr addrTree
	for k := uint64(0); k < 100000; k++ {
		tr.seek(k)
		tr.set(k, &Mapping{Start: k})
	}
	peak := countNodes(tr.root)
	for k := uint64(0); k < 100000; k++ {
		if k%997 != 0 {
			tr.seek(k)
			tr.delete(k)
		}
	}
	if n, nodes := tr.len(), countNodes(tr.root); n != 101 || nodes > 8 {
		t.Errorf("%d entries in %d nodes (%d at the peak), want 101 in a few", n, nodes, peak)
	}
}
