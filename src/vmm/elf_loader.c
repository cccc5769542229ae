#include "elf_loader.h"

#include <elf.h>
#include <errno.h>
#include <string.h>

#include "apfvm/abi.h"
#include "arch_vm.h"

#define PAGE_DOWN(x) ((x) & ~(uint64_t)(APF_PAGE_SIZE - 1))
#define PAGE_UP(x)   PAGE_DOWN((x) + APF_PAGE_SIZE - 1)

int elf_load(struct guest_mem *gm, const void *blob, size_t len, const char *name, gpa_t limit,
	     struct elf_image *out, struct apf_err *e)
{
	const Elf64_Ehdr *eh = blob;
	bool entry_ok = false;

	memset(out, 0, sizeof(*out));
	if (len < sizeof(*eh) || memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0)
		return apf_fail(e, -ENOEXEC, "guest '%s' is not an ELF file", name);
	if (eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_ident[EI_DATA] != ELFDATA2LSB ||
	    eh->e_machine != ARCH_ELF_MACHINE)
		return apf_fail(e, -ENOEXEC, "guest '%s' is not a 64-bit %s ELF", name, ARCH_NAME);
	if (eh->e_type != ET_EXEC)
		return apf_fail(e, -ENOEXEC, "guest '%s' is not a static executable (ET_EXEC)", name);
	if (eh->e_phentsize != sizeof(Elf64_Phdr) || eh->e_phnum == 0 ||
	    eh->e_phoff > len || (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr) > len - eh->e_phoff)
		return apf_fail(e, -ENOEXEC, "guest '%s' has a malformed program header table", name);

	for (unsigned i = 0; i < eh->e_phnum; i++) {
		Elf64_Phdr ph;
		memcpy(&ph, (const char *)blob + eh->e_phoff + i * sizeof(ph), sizeof(ph));
		if (ph.p_type != PT_LOAD || ph.p_memsz == 0)
			continue;
		if (out->nsegs == ELF_MAX_SEGMENTS)
			return apf_fail(e, -ENOEXEC, "guest '%s' has more than %d loadable segments",
					name, ELF_MAX_SEGMENTS);
		if (ph.p_filesz > ph.p_memsz || ph.p_offset > len || ph.p_filesz > len - ph.p_offset)
			return apf_fail(e, -ENOEXEC, "guest '%s': segment %u lies outside the file",
					name, i);
		if (ph.p_paddr < APF_KERNEL_GPA || ph.p_paddr > limit ||
		    ph.p_memsz > limit - ph.p_paddr)
			return apf_fail(e, -ENOEXEC,
					"guest '%s': segment %u at 0x%llx+0x%llx is outside [0x%x, 0x%llx)",
					name, i, (unsigned long long)ph.p_paddr,
					(unsigned long long)ph.p_memsz, APF_KERNEL_GPA,
					(unsigned long long)limit);
		void *dst = gmem_ptr(gm, ph.p_paddr, ph.p_memsz);
		if (!dst)
			return apf_fail(e, -ENOEXEC, "guest '%s': segment %u does not fit guest memory",
					name, i);
		memcpy(dst, (const char *)blob + ph.p_offset, ph.p_filesz);
		/* The rest (bss) is already zero: fresh anonymous memory. */
		struct elf_segment *s = &out->segs[out->nsegs++];
		s->start = PAGE_DOWN(ph.p_paddr);
		s->end = PAGE_UP(ph.p_paddr + ph.p_memsz);
		s->user = (ph.p_flags & APF_PF_USER) != 0;
		if (s->end > out->end)
			out->end = s->end;
		if ((ph.p_flags & PF_X) && eh->e_entry >= ph.p_paddr &&
		    eh->e_entry < ph.p_paddr + ph.p_memsz)
			entry_ok = true;
	}
	if (!out->nsegs)
		return apf_fail(e, -ENOEXEC, "guest '%s' has no loadable segment", name);
	if (!entry_ok)
		return apf_fail(e, -ENOEXEC, "guest '%s': entry point 0x%llx is not in an executable segment",
				name, (unsigned long long)eh->e_entry);
	out->entry = eh->e_entry;
	return 0;
}
