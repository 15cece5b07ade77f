package syscalltrace

// addrTree maps start addresses to the mappings of one address space, in
// order. It is a B+tree with linked leaves, made for the replay's one
// pattern: find what overlaps a range, then remove what was found or put a
// new mapping where the search ended. The search leaves a finger on its
// leaf, so that the removal or insertion after it needs no second descent:
// that halves the replay's cost against a general ordered map.
//
// Nodes left under a quarter full merge with a neighbour that has room, so
// the tree's size follows its entries.
type addrTree struct {
	root  *treeNode
	first *treeNode // the leftmost leaf
	n     int

	// The finger: where the last seek descended to, valid while version
	// has not changed since.
	finger        cursor
	fingerKey     uint64
	fingerVersion uint64
	version       uint64
}

// treeFanout is the most keys a node holds: 64 keys are eight cache lines.
const treeFanout = 64

type treeNode struct {
	n    int
	keys [treeFanout]uint64
	// A leaf holds vals and links; an internal node holds n separators and
	// n+1 kids, kids[i] holding the keys in [keys[i-1], keys[i]).
	vals       [treeFanout]*Mapping
	prev, next *treeNode
	kids       []*treeNode
}

func (nd *treeNode) leaf() bool { return nd.kids == nil }

// lowerBound is the first index whose key is ≥ k.
func (nd *treeNode) lowerBound(k uint64) int {
	lo, hi := 0, nd.n
	for lo < hi {
		h := int(uint(lo+hi) >> 1)
		if nd.keys[h] < k {
			lo = h + 1
		} else {
			hi = h
		}
	}
	return lo
}

// upperBound is the first index whose key is > k: the kid that holds k.
func (nd *treeNode) upperBound(k uint64) int {
	lo, hi := 0, nd.n
	for lo < hi {
		h := int(uint(lo+hi) >> 1)
		if nd.keys[h] <= k {
			lo = h + 1
		} else {
			hi = h
		}
	}
	return lo
}

// cursor is a position in a leaf; i may be leaf.n, past its last key.
type cursor struct {
	leaf *treeNode
	i    int
}

// valid reports whether c is at an entry, moving it to the next leaf when
// it is past the end of its own.
func (c *cursor) valid() bool {
	for c.leaf != nil && c.i >= c.leaf.n {
		c.leaf, c.i = c.leaf.next, 0
	}
	return c.leaf != nil
}

func (c *cursor) key() uint64     { return c.leaf.keys[c.i] }
func (c *cursor) value() *Mapping { return c.leaf.vals[c.i] }

// next moves to the following entry and reports whether there is one.
func (c *cursor) next() bool {
	c.i++
	return c.valid()
}

// before returns the entry before position c, if any.
func (c cursor) before() (*Mapping, bool) {
	if c.leaf == nil {
		return nil, false
	}
	if c.i > 0 {
		return c.leaf.vals[c.i-1], true
	}
	for l := c.leaf.prev; l != nil; l = l.prev {
		if l.n > 0 {
			return l.vals[l.n-1], true
		}
	}
	return nil, false
}

// seek descends to where k is or would be, and leaves the finger there.
func (t *addrTree) seek(k uint64) cursor {
	nd := t.root
	if nd == nil {
		return cursor{}
	}
	for !nd.leaf() {
		nd = nd.kids[nd.upperBound(k)]
	}
	c := cursor{nd, nd.lowerBound(k)}
	t.finger, t.fingerKey, t.fingerVersion = c, k, t.version
	return c
}

// last returns the entry with the largest key, if any.
func (t *addrTree) last() (*Mapping, bool) {
	nd := t.root
	if nd == nil {
		return nil, false
	}
	for !nd.leaf() {
		nd = nd.kids[len(nd.kids)-1]
	}
	return cursor{nd, nd.n}.before()
}

// scan calls fn for every entry in key order.
func (t *addrTree) scan(fn func(*Mapping)) {
	for l := t.first; l != nil; l = l.next {
		for i := 0; i < l.n; i++ {
			fn(l.vals[i])
		}
	}
}

func (t *addrTree) len() int { return t.n }

// set puts m at k, replacing what is there.
func (t *addrTree) set(k uint64, m *Mapping) {
	if t.root == nil {
		t.root = &treeNode{}
		t.first = t.root
	}
	if f := &t.finger; f.leaf != nil && t.fingerVersion == t.version && t.fingerKey == k && f.leaf.n < treeFanout &&
		(f.i == f.leaf.n || f.leaf.keys[f.i] != k) {
		// Where the last seek for k ended, with room: no descent.
		f.leaf.insert(f.i, k, m)
		t.n++
		t.version++
		return
	}
	t.version++
	sep, right := t.insertInto(t.root, k, m)
	if right != nil {
		root := &treeNode{n: 1, kids: make([]*treeNode, 2, treeFanout+1)}
		root.keys[0] = sep
		root.kids[0], root.kids[1] = t.root, right
		t.root = root
	}
}

// insert shifts a leaf's entries from i to put k, m there.
func (nd *treeNode) insert(i int, k uint64, m *Mapping) {
	copy(nd.keys[i+1:nd.n+1], nd.keys[i:nd.n])
	copy(nd.vals[i+1:nd.n+1], nd.vals[i:nd.n])
	nd.keys[i], nd.vals[i] = k, m
	nd.n++
}

// insertInto puts k, m under nd; a node that split returns its new right
// half and the separator for the parent.
func (t *addrTree) insertInto(nd *treeNode, k uint64, m *Mapping) (uint64, *treeNode) {
	if nd.leaf() {
		i := nd.lowerBound(k)
		if i < nd.n && nd.keys[i] == k {
			nd.vals[i] = m
			return 0, nil
		}
		t.n++
		if nd.n < treeFanout {
			nd.insert(i, k, m)
			return 0, nil
		}
		half := treeFanout / 2
		right := &treeNode{n: treeFanout - half, prev: nd, next: nd.next}
		copy(right.keys[:], nd.keys[half:])
		copy(right.vals[:], nd.vals[half:])
		clear(nd.vals[half:])
		nd.n = half
		if nd.next != nil {
			nd.next.prev = right
		}
		nd.next = right
		if i <= half {
			nd.insert(i, k, m)
		} else {
			right.insert(i-half, k, m)
		}
		return right.keys[0], right
	}
	i := nd.upperBound(k)
	sep, kid := t.insertInto(nd.kids[i], k, m)
	if kid == nil {
		return 0, nil
	}
	// The separator goes to keys[i], the new kid to kids[i+1].
	keys := make([]uint64, 0, treeFanout+1)
	keys = append(append(append(keys, nd.keys[:i]...), sep), nd.keys[i:nd.n]...)
	kids := make([]*treeNode, 0, treeFanout+2)
	kids = append(append(append(kids, nd.kids[:i+1]...), kid), nd.kids[i+1:]...)
	if len(keys) <= treeFanout {
		nd.n = copy(nd.keys[:], keys)
		nd.kids = append(nd.kids[:0], kids...)
		return 0, nil
	}
	// Split: the middle key goes up.
	mid := len(keys) / 2
	right := &treeNode{kids: make([]*treeNode, 0, treeFanout+1)}
	right.n = copy(right.keys[:], keys[mid+1:])
	right.kids = append(right.kids, kids[mid+1:]...)
	nd.n = copy(nd.keys[:], keys[:mid])
	nd.kids = append(nd.kids[:0], kids[:mid+1]...)
	return keys[mid], right
}

// delete removes the entry at k, if any.
func (t *addrTree) delete(k uint64) {
	if f := &t.finger; t.fingerVersion == t.version && f.leaf != nil && f.i < f.leaf.n && f.leaf.keys[f.i] == k && f.leaf.n > treeFanout/4 {
		// Found by the last seek, and its leaf stays a quarter full: no
		// descent.
		f.leaf.remove(f.i)
		t.n--
		t.version++
		return
	}
	t.version++
	if t.root == nil || !t.deleteFrom(t.root, k) {
		return
	}
	t.n--
	for !t.root.leaf() && len(t.root.kids) == 1 {
		t.root = t.root.kids[0]
	}
	if len(t.root.kids) == 0 && !t.root.leaf() {
		t.root = &treeNode{} // every leaf emptied
	}
	if t.root.leaf() {
		t.first, t.root.prev, t.root.next = t.root, nil, nil
	}
}

// remove drops a leaf's entry i.
func (nd *treeNode) remove(i int) {
	copy(nd.keys[i:nd.n-1], nd.keys[i+1:nd.n])
	copy(nd.vals[i:nd.n-1], nd.vals[i+1:nd.n])
	nd.n--
	nd.vals[nd.n] = nil
}

// deleteFrom removes k under nd and reports whether it was there. A kid
// left empty is dropped; one left under a quarter full is merged with a
// neighbour when the two fit in one node, so that the tree stays within a
// small factor of its entries however they were deleted.
func (t *addrTree) deleteFrom(nd *treeNode, k uint64) bool {
	if nd.leaf() {
		i := nd.lowerBound(k)
		if i == nd.n || nd.keys[i] != k {
			return false
		}
		nd.remove(i)
		return true
	}
	i := nd.upperBound(k)
	kid := nd.kids[i]
	if !t.deleteFrom(kid, k) {
		return false
	}
	switch size := kid.size(); {
	case size == 0:
		t.drop(nd, i)
	case size < treeFanout/4:
		if i > 0 && t.merge(nd, i-1) {
			break
		}
		t.merge(nd, i)
	}
	return true
}

// size is a node's entries: keys of a leaf, kids of an internal node.
func (nd *treeNode) size() int {
	if nd.leaf() {
		return nd.n
	}
	return len(nd.kids)
}

// merge moves nd's kid j+1 into kid j when they fit in one node, and
// reports whether it did.
func (t *addrTree) merge(nd *treeNode, j int) bool {
	if j+1 >= len(nd.kids) {
		return false
	}
	left, right := nd.kids[j], nd.kids[j+1]
	if left.leaf() {
		if left.n+right.n > treeFanout {
			return false
		}
		copy(left.keys[left.n:], right.keys[:right.n])
		copy(left.vals[left.n:], right.vals[:right.n])
		left.n += right.n
		left.next = right.next
		if right.next != nil {
			right.next.prev = left
		}
	} else {
		if left.n+1+right.n > treeFanout {
			return false
		}
		// The separator between them comes down between their keys.
		left.keys[left.n] = nd.keys[j]
		copy(left.keys[left.n+1:], right.keys[:right.n])
		left.n += 1 + right.n
		left.kids = append(left.kids, right.kids...)
	}
	copy(nd.keys[j:nd.n-1], nd.keys[j+1:nd.n])
	nd.n--
	nd.kids = append(nd.kids[:j+1], nd.kids[j+2:]...)
	return true
}

// drop removes nd's empty kid i and a separator beside it: the neighbour
// takes its range.
func (t *addrTree) drop(nd *treeNode, i int) {
	if kid := nd.kids[i]; kid.leaf() {
		if kid.prev != nil {
			kid.prev.next = kid.next
		} else {
			t.first = kid.next
		}
		if kid.next != nil {
			kid.next.prev = kid.prev
		}
	}
	if nd.n > 0 {
		sep := max(i-1, 0)
		copy(nd.keys[sep:nd.n-1], nd.keys[sep+1:nd.n])
		nd.n--
	}
	nd.kids = append(nd.kids[:i], nd.kids[i+1:]...)
}
