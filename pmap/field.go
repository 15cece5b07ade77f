package pmap

// Field names one per-mapping counter of /proc/<pid>/smaps, as the kernel
// spells it. Fields whose kernel unit is kB are stored in bytes; the others
// (THPeligible, ProtectionKey) are stored as written.
type Field uint8

// The counters the kernel writes in smaps and smaps_rollup (Linux 6.18).
// Older kernels omit some of them; a Mapping records which were present.
const (
	FieldSize Field = iota
	FieldKernelPageSize
	FieldMMUPageSize
	FieldRss
	FieldPss
	FieldPssDirty
	FieldPssAnon
	FieldPssFile
	FieldPssShmem
	FieldSharedClean
	FieldSharedDirty
	FieldPrivateClean
	FieldPrivateDirty
	FieldReferenced
	FieldAnonymous
	FieldKSM
	FieldLazyFree
	FieldAnonHugePages
	FieldShmemPmdMapped
	FieldFilePmdMapped
	FieldSharedHugetlb
	FieldPrivateHugetlb
	FieldSwap
	FieldSwapPss
	FieldLocked
	FieldTHPeligible
	FieldProtectionKey

	numFields
)

var fieldNames = [numFields]string{
	FieldSize:           "Size",
	FieldKernelPageSize: "KernelPageSize",
	FieldMMUPageSize:    "MMUPageSize",
	FieldRss:            "Rss",
	FieldPss:            "Pss",
	FieldPssDirty:       "Pss_Dirty",
	FieldPssAnon:        "Pss_Anon",
	FieldPssFile:        "Pss_File",
	FieldPssShmem:       "Pss_Shmem",
	FieldSharedClean:    "Shared_Clean",
	FieldSharedDirty:    "Shared_Dirty",
	FieldPrivateClean:   "Private_Clean",
	FieldPrivateDirty:   "Private_Dirty",
	FieldReferenced:     "Referenced",
	FieldAnonymous:      "Anonymous",
	FieldKSM:            "KSM",
	FieldLazyFree:       "LazyFree",
	FieldAnonHugePages:  "AnonHugePages",
	FieldShmemPmdMapped: "ShmemPmdMapped",
	FieldFilePmdMapped:  "FilePmdMapped",
	FieldSharedHugetlb:  "Shared_Hugetlb",
	FieldPrivateHugetlb: "Private_Hugetlb",
	FieldSwap:           "Swap",
	FieldSwapPss:        "SwapPss",
	FieldLocked:         "Locked",
	FieldTHPeligible:    "THPeligible",
	FieldProtectionKey:  "ProtectionKey",
}

// String returns the key exactly as the kernel writes it, e.g. "Pss_Dirty".
func (f Field) String() string {
	if f < numFields {
		return fieldNames[f]
	}
	return "Field(?)"
}

// InBytes reports whether the kernel writes f in kB (and so it is stored in bytes).
func (f Field) InBytes() bool {
	return f != FieldTHPeligible && f != FieldProtectionKey
}

// Summable reports whether adding f over mappings means something: sizes
// do; page sizes, THPeligible and ProtectionKey do not.
func (f Field) Summable() bool {
	switch f {
	case FieldKernelPageSize, FieldMMUPageSize, FieldTHPeligible, FieldProtectionKey:
		return false
	}
	return f < numFields
}

// lookupField maps a kernel key to its Field. The switch on string(key) does
// not allocate, which matters: it runs once per line.
func lookupField(key []byte) (Field, bool) {
	switch string(key) {
	case "Size":
		return FieldSize, true
	case "KernelPageSize":
		return FieldKernelPageSize, true
	case "MMUPageSize":
		return FieldMMUPageSize, true
	case "Rss":
		return FieldRss, true
	case "Pss":
		return FieldPss, true
	case "Pss_Dirty":
		return FieldPssDirty, true
	case "Pss_Anon":
		return FieldPssAnon, true
	case "Pss_File":
		return FieldPssFile, true
	case "Pss_Shmem":
		return FieldPssShmem, true
	case "Shared_Clean":
		return FieldSharedClean, true
	case "Shared_Dirty":
		return FieldSharedDirty, true
	case "Private_Clean":
		return FieldPrivateClean, true
	case "Private_Dirty":
		return FieldPrivateDirty, true
	case "Referenced":
		return FieldReferenced, true
	case "Anonymous":
		return FieldAnonymous, true
	case "KSM":
		return FieldKSM, true
	case "LazyFree":
		return FieldLazyFree, true
	case "AnonHugePages":
		return FieldAnonHugePages, true
	case "ShmemPmdMapped":
		return FieldShmemPmdMapped, true
	case "FilePmdMapped":
		return FieldFilePmdMapped, true
	case "Shared_Hugetlb":
		return FieldSharedHugetlb, true
	case "Private_Hugetlb":
		return FieldPrivateHugetlb, true
	case "Swap":
		return FieldSwap, true
	case "SwapPss":
		return FieldSwapPss, true
	case "Locked":
		return FieldLocked, true
	case "THPeligible":
		return FieldTHPeligible, true
	case "ProtectionKey":
		return FieldProtectionKey, true
	}
	return 0, false
}

var fieldJSONKeys = [numFields]string{
	FieldSize:           "size_bytes",
	FieldKernelPageSize: "kernel_page_size_bytes",
	FieldMMUPageSize:    "mmu_page_size_bytes",
	FieldRss:            "rss_bytes",
	FieldPss:            "pss_bytes",
	FieldPssDirty:       "pss_dirty_bytes",
	FieldPssAnon:        "pss_anon_bytes",
	FieldPssFile:        "pss_file_bytes",
	FieldPssShmem:       "pss_shmem_bytes",
	FieldSharedClean:    "shared_clean_bytes",
	FieldSharedDirty:    "shared_dirty_bytes",
	FieldPrivateClean:   "private_clean_bytes",
	FieldPrivateDirty:   "private_dirty_bytes",
	FieldReferenced:     "referenced_bytes",
	FieldAnonymous:      "anonymous_bytes",
	FieldKSM:            "ksm_bytes",
	FieldLazyFree:       "lazy_free_bytes",
	FieldAnonHugePages:  "anon_huge_pages_bytes",
	FieldShmemPmdMapped: "shmem_pmd_mapped_bytes",
	FieldFilePmdMapped:  "file_pmd_mapped_bytes",
	FieldSharedHugetlb:  "shared_hugetlb_bytes",
	FieldPrivateHugetlb: "private_hugetlb_bytes",
	FieldSwap:           "swap_bytes",
	FieldSwapPss:        "swap_pss_bytes",
	FieldLocked:         "locked_bytes",
	FieldTHPeligible:    "thp_eligible",
	FieldProtectionKey:  "protection_key",
}

// JSONKey is the field's key in memdiag's JSON: snake_case, with a _bytes
// suffix for sizes ("pss_dirty_bytes", "thp_eligible").
func (f Field) JSONKey() string {
	if f < numFields {
		return fieldJSONKeys[f]
	}
	return "unknown"
}

// Fields lists every known field in kernel order.
func Fields() []Field {
	fs := make([]Field, numFields)
	for i := range fs {
		fs[i] = Field(i)
	}
	return fs
}
