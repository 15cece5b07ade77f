# What an engineer writes without memdiag: find each malloc_info document in a
# log, parse it with ElementTree, and print per document the arenas, the bytes
# held from the system and the bytes free. Used by bench/mallocinfo.sh.
import sys
import xml.etree.ElementTree as ET

doc = None
for line in open(sys.argv[1], errors="replace"):
    if doc is None and "<malloc " in line:
        doc = [line[line.index("<malloc "):]]
    elif doc is not None:
        doc.append(line)
    if doc is not None and "</malloc>" in line:
        root = ET.fromstring("".join(doc))
        doc = None
        heaps = root.findall("heap")
        current = sum(int(h.find("system[@type='current']").get("size")) for h in heaps)
        free = sum(int(t.get("size")) for h in heaps for t in h.findall("total"))
        print(len(heaps), current, free)
