package jmx

import (
	"encoding/binary"
	"reflect"
	"sort"
	"testing"
)

// encodeHsperf writes counters as a HotSpot performance data file (version
// 2.0) in the given byte order: what parseHsperf reads, from the other
// side, so that a parse can be checked by a round trip.
func encodeHsperf(cs map[string]PerfCounter, order binary.ByteOrder) []byte {
	names := make([]string, 0, len(cs))
	for n := range cs {
		names = append(names, n)
	}
	sort.Strings(names)
	b := make([]byte, 32)
	copy(b, []byte{0xca, 0xfe, 0xc0, 0xc0})
	if order == binary.LittleEndian {
		b[4] = 1
	}
	b[5] = 2
	order.PutUint32(b[24:], 32)
	order.PutUint32(b[28:], uint32(len(names)))
	for _, n := range names {
		c := cs[n]
		dataOff := (20 + len(n) + 1 + 7) &^ 7
		var data []byte
		typ, vlen := byte('J'), 0
		if c.IsText {
			typ, vlen = 'B', len(c.String)+1
			data = append([]byte(c.String), 0)
		} else {
			data = make([]byte, 8)
			order.PutUint64(data, uint64(c.Value))
		}
		length := (dataOff + len(data) + 7) &^ 7
		e := make([]byte, length)
		order.PutUint32(e[0:], uint32(length))
		order.PutUint32(e[4:], 20)
		order.PutUint32(e[8:], uint32(vlen))
		e[12], e[14] = typ, c.Units
		order.PutUint32(e[16:], uint32(dataOff))
		copy(e[20:], n)
		copy(e[dataOff:], data)
		b = append(b, e...)
	}
	order.PutUint32(b[8:], uint32(len(b)))
	return b
}

// hsperfSeed is a G1 JVM's counters as memdiag reads them: two
// generations with their spaces, metaspace, compiled code, the version.
func hsperfSeed() map[string]PerfCounter {
	cs := map[string]PerfCounter{}
	num := func(n string, v int64) { cs[n] = PerfCounter{Name: n, Value: v, Units: 2} }
	text := func(n, s string) { cs[n] = PerfCounter{Name: n, String: s, IsText: true, Units: 5} }
	text("sun.gc.policy.name", "GarbageFirst")
	text("java.property.java.vm.version", "17.0.9+9-Debian-1deb12u1")
	num("sun.gc.generation.0.capacity", 16<<20)
	num("sun.gc.generation.0.maxCapacity", 256<<20+8)
	num("sun.gc.generation.0.space.0.used", 4<<20)
	num("sun.gc.generation.0.space.0.capacity", 16<<20)
	text("sun.gc.generation.0.space.0.name", "eden")
	num("sun.gc.generation.1.capacity", 32<<20)
	num("sun.gc.generation.1.maxCapacity", 256<<20)
	num("sun.gc.generation.1.space.0.used", 20<<20)
	num("sun.gc.generation.1.space.0.capacity", 32<<20)
	text("sun.gc.generation.1.space.0.name", "old space")
	num("sun.gc.metaspace.used", 9<<20)
	num("sun.gc.metaspace.capacity", 10<<20)
	num("sun.gc.metaspace.maxCapacity", 1<<30)
	num("sun.ci.nmethodCodeSize", 3<<20)
	return cs
}

// TestHsperfRoundTrip: what the encoder writes, in either byte order,
// parses back to the same counters, and to the heap the counters say.
func TestHsperfRoundTrip(t *testing.T) {
	want := hsperfSeed()
	for _, order := range []binary.ByteOrder{binary.BigEndian, binary.LittleEndian} {
		got, err := parseHsperf(encodeHsperf(want, order), "seed")
		if err != nil {
			t.Fatalf("%v: %v", order, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%v: round trip\n got %+v\nwant %+v", order, got, want)
		}
		var m JVMMemory
		hsperfMemory(got, &m)
		if m.Heap.UsedBytes != 24<<20 || m.Heap.CommittedBytes != 48<<20 || m.Heap.MaxBytes == nil || *m.Heap.MaxBytes != 256<<20 || m.GC != "GarbageFirst" {
			t.Errorf("%v: heap %+v GC %q; want used 24 MiB, committed 48 MiB, max 256 MiB (G1: the larger generation's, region-aligned)", order, m.Heap, m.GC)
		}
	}
}
