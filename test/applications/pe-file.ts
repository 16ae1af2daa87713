/**
 * The smallest well-formed Windows executable that Authenticode tools accept: a PE32+ console
 * program (x86-64) whose one .text section holds `xor eax, eax; ret` (it returns 0). Built here
 * rather than taken from a package so the test depends on nothing but osslsigncode.
 *
 * Layout (Microsoft PE/COFF specification): DOS header with e_lfanew → "PE\0\0", COFF file
 * header, 240-byte PE32+ optional header (16 data directories, all empty: osslsigncode fills the
 * certificate table), one section header; headers padded to FileAlignment (0x200), then the
 * section's raw data (0x200 bytes). The checksum is left 0; signing recomputes it.
 */

const FILE_ALIGNMENT = 0x200;
const SECTION_ALIGNMENT = 0x1000;
const PE_HEADER_OFFSET = 0x40;
const OPTIONAL_HEADER_SIZE = 240;
/** `xor eax, eax; ret` */
const CODE = [0x31, 0xc0, 0xc3];

/** Offset of the .text section's code in the file (tests change a byte there to break a signature). */
export const CODE_OFFSET = FILE_ALIGNMENT;

export function minimalPeFile(): Buffer {
  const pe = Buffer.alloc(2 * FILE_ALIGNMENT);
  // DOS header: magic and the offset of the PE signature.
  pe.write('MZ', 0, 'latin1');
  pe.writeUInt32LE(PE_HEADER_OFFSET, 0x3c);
  pe.write('PE\0\0', PE_HEADER_OFFSET, 'latin1');

  // COFF file header.
  const coff = PE_HEADER_OFFSET + 4;
  pe.writeUInt16LE(0x8664, coff); // Machine: AMD64
  pe.writeUInt16LE(1, coff + 2); // NumberOfSections
  pe.writeUInt16LE(OPTIONAL_HEADER_SIZE, coff + 16);
  pe.writeUInt16LE(0x0022, coff + 18); // EXECUTABLE_IMAGE | LARGE_ADDRESS_AWARE

  // PE32+ optional header.
  const opt = coff + 20;
  pe.writeUInt16LE(0x20b, opt); // Magic: PE32+
  pe.writeUInt32LE(FILE_ALIGNMENT, opt + 4); // SizeOfCode
  pe.writeUInt32LE(SECTION_ALIGNMENT, opt + 16); // AddressOfEntryPoint
  pe.writeUInt32LE(SECTION_ALIGNMENT, opt + 20); // BaseOfCode
  pe.writeBigUInt64LE(0x140000000n, opt + 24); // ImageBase
  pe.writeUInt32LE(SECTION_ALIGNMENT, opt + 32);
  pe.writeUInt32LE(FILE_ALIGNMENT, opt + 36);
  pe.writeUInt16LE(6, opt + 40); // MajorOperatingSystemVersion
  pe.writeUInt16LE(6, opt + 48); // MajorSubsystemVersion
  pe.writeUInt32LE(2 * SECTION_ALIGNMENT, opt + 56); // SizeOfImage: headers + .text
  pe.writeUInt32LE(FILE_ALIGNMENT, opt + 60); // SizeOfHeaders
  pe.writeUInt16LE(3, opt + 68); // Subsystem: Windows console
  pe.writeUInt16LE(0x8160, opt + 70); // DllCharacteristics: high-entropy VA, dynamic base, NX, TS-aware
  pe.writeBigUInt64LE(0x100000n, opt + 72); // SizeOfStackReserve
  pe.writeBigUInt64LE(0x1000n, opt + 80); // SizeOfStackCommit
  pe.writeBigUInt64LE(0x100000n, opt + 88); // SizeOfHeapReserve
  pe.writeBigUInt64LE(0x1000n, opt + 96); // SizeOfHeapCommit
  pe.writeUInt32LE(16, opt + 108); // NumberOfRvaAndSizes (the directories follow, all zero)

  // Section header: .text, code, execute + read.
  const section = opt + OPTIONAL_HEADER_SIZE;
  pe.write('.text', section, 'latin1');
  pe.writeUInt32LE(CODE.length, section + 8); // VirtualSize
  pe.writeUInt32LE(SECTION_ALIGNMENT, section + 12); // VirtualAddress
  pe.writeUInt32LE(FILE_ALIGNMENT, section + 16); // SizeOfRawData
  pe.writeUInt32LE(CODE_OFFSET, section + 20); // PointerToRawData
  pe.writeUInt32LE(0x60000020, section + 36); // CNT_CODE | MEM_EXECUTE | MEM_READ

  Buffer.from(CODE).copy(pe, CODE_OFFSET);
  return pe;
}
