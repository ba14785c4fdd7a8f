"""`arwave encode RUN IN.wav OUT.safetensors` and `arwave decode RUN IN.safetensors OUT.wav` (the work:
arwave.codec.files). Both check the output path before any work and never replace an existing file
without --overwrite.
"""

from __future__ import annotations

import json


def encode(args) -> int:
    from arwave.codec.files import encode_file, load_codec
    from arwave.paths import check_output_file

    check_output_file(args.output, args.overwrite, (".safetensors",), "encoded tokens")
    codec = load_codec(args.run, args.device)
    result = encode_file(codec, args.input, args.output, args.device)
    what = codec.bottleneck.count_unit
    print(f"{args.input}: {result['seconds']:.2f} s -> {result['count']} {what} ({codec.kind}) in {args.output}")
    if args.json:
        print(json.dumps(result))
    return 0


def decode(args) -> int:
    from arwave.codec.files import decode_file, load_codec
    from arwave.data.audio import WRITE_EXTENSIONS
    from arwave.paths import check_output_file

    check_output_file(args.output, args.overwrite, WRITE_EXTENSIONS, "audio")
    codec = load_codec(args.run, args.device)
    result = decode_file(codec, args.input, args.output, args.run, args.device)
    print(
        f"{args.input} -> {args.output}: {result['seconds']:.2f} s at {codec.sample_rate} Hz, "
        f"{codec.channels} channel(s)"
    )
    if args.json:
        print(json.dumps(result))
    return 0


def register(sub) -> None:
    p = sub.add_parser("encode", help="encode audio with a trained codec run into codes or latents (.safetensors)")
    p.add_argument("run", metavar="RUN", help="codec run folder, or a bundled codec's name (arwave models)")
    p.add_argument("input", metavar="IN", help="audio file (any rate/channels; converted to the codec's)")
    p.add_argument("output", metavar="OUT", help="output .safetensors")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    p.set_defaults(func=encode)

    p = sub.add_parser("decode", help="decode codes or latents written by `arwave encode` back to audio")
    p.add_argument("run", metavar="RUN", help="codec run folder or bundled codec name (the one that encoded the file)")
    p.add_argument("input", metavar="IN", help=".safetensors from `arwave encode`")
    p.add_argument("output", metavar="OUT", help="output audio file (.wav, .flac, ...)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    p.set_defaults(func=decode)
