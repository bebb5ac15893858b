"""H.264 bitstream reshaping for FLV: Annex B (what libx264 emits) to the AVC form FLV
carries (an AVCDecoderConfigurationRecord once, then NALUs with 4-byte length prefixes).
"""

from __future__ import annotations

__all__ = ["decoder_configuration_record", "length_prefixed", "split_annex_b"]

_NAL_SPS = 7
_NAL_PPS = 8


def split_annex_b(data: bytes) -> list[bytes]:
    """The NAL units of an Annex B byte stream (3- or 4-byte start codes)."""
    units: list[bytes] = []
    start = -1
    index = 0
    length = len(data)
    while index + 3 <= length:
        if data[index] == 0 and data[index + 1] == 0 and data[index + 2] == 1:
            if start >= 0:
                units.append(data[start:index].rstrip(b"\x00"))
            index += 3
            start = index
        else:
            index += 1
    if start >= 0 and start < length:
        units.append(data[start:])
    return [unit for unit in units if unit]


def length_prefixed(units: list[bytes]) -> bytes:
    """NAL units as FLV (and MP4) carry them: each after its 4-byte big-endian size."""
    return b"".join(len(unit).to_bytes(4, "big") + unit for unit in units)


def decoder_configuration_record(parameter_sets: list[bytes]) -> bytes:
    """An AVCDecoderConfigurationRecord (ISO 14496-15) from SPS and PPS NAL units."""
    sps = [unit for unit in parameter_sets if unit[0] & 0x1F == _NAL_SPS]
    pps = [unit for unit in parameter_sets if unit[0] & 0x1F == _NAL_PPS]
    if not sps or not pps:
        raise ValueError("the encoder gave no SPS/PPS")
    first = sps[0]
    record = bytearray((1, first[1], first[2], first[3], 0xFC | 3))  # 4-byte NALU lengths
    record.append(0xE0 | len(sps))
    for unit in sps:
        record += len(unit).to_bytes(2, "big") + unit
    record.append(len(pps))
    for unit in pps:
        record += len(unit).to_bytes(2, "big") + unit
    return bytes(record)
