"""The prompt-injection guard: scan an assembled agent prompt before anything runs.

Pure: sections of text in, the first match (or None) out. A job's prompt is assembled
from files, another job's output and a script's stdout, any of which may carry text
written by someone other than the job's author (an alert body, a web page, an issue
comment). A match makes the run ``refused`` before the agent starts (docs/design.md
section 5, Safety); ``allow_injection_risk: true`` on a job turns the scan off.

The phrases are matched on a normalized copy of the text, so the usual evasions do not
slip through: letter case, runs of spaces or newlines or punctuation between words,
zero-width and other invisible characters, accents, full-width or mathematical letters
(Unicode compatibility folding, as NFKC does) and the common Cyrillic and Greek
look-alikes of Latin letters. The strongest phrases are also matched on a *squeezed*
copy (letters and digits only, leetspeak digits read as letters), which catches
"i.g.n.o.r.e", "i g n o r e" and "1gn0r3 4ll pr3v10u5". Phrases in other languages
(German, French, Spanish, Italian, Portuguese, Dutch, Polish, Russian, Ukrainian,
Chinese, Japanese, Korean) are matched on the text case-folded but otherwise as written.

Some characters are refused outright rather than stripped: Unicode tag characters
(U+E0000-U+E007F, invisible "ASCII smuggling" that models read but people do not see)
and the bidirectional embedding, override and isolate controls (U+202A-U+202E,
U+2066-U+2069, the "Trojan Source" characters). Context text has no honest use for
them; stripping them would hide that someone wrote them. The left-to-right and
right-to-left marks (U+200E, U+200F) that Hebrew and Arabic text uses are allowed.

False positives matter as much as misses: a refused run is a failed run. Every pattern
therefore needs the *instruction* words, not just a verb: "ignore flaky alerts" or "send
the API key rotation reminder to the security channel" are ordinary job text.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["BUILTIN_PATTERNS", "GuardMatch", "normalize", "scan"]


@dataclass(frozen=True)
class GuardMatch:
    """Where the guard matched: the phrase as normalized, the section's source, and the
    surrounding original text (one line, invisible characters removed)."""

    phrase: str
    source: str
    excerpt: str


# -- normalization ---------------------------------------------------------------------

# Invisible characters that are not in Unicode's Cf/Mn/Me categories (those are dropped
# wholesale): Hangul fillers render as blank space.
_INVISIBLE = {"\u115f", "\u1160", "\u3164", "\uffa0"}

# Look-alikes of Latin letters (after casefold), from Unicode's confusables.txt: the
# Cyrillic and Greek letters used to dodge filters, and typographic quotes.
_CONFUSABLES = str.maketrans(
    {
        "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o",
        "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "і": "i", "ї": "i", "ј": "j",
        "ѕ": "s", "ԁ": "d", "ԛ": "q", "ԝ": "w", "һ": "h", "ɡ": "g", "ı": "i",
        "α": "a", "β": "b", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p",
        "τ": "t", "υ": "u", "χ": "x", "ω": "w",
        "\u2018": "'", "\u2019": "'", "\u02bc": "'", "\u201c": '"', "\u201d": '"',
    }
)  # fmt: skip


def normalize(text: str) -> tuple[str, list[int] | None]:
    """The text as the patterns see it, and a map from each of its characters back to
    the index in ``text`` (None when the two line up one to one, as for ASCII)."""
    if text.isascii():
        # ASCII has nothing to decompose or confuse; lower() keeps every index.
        return text.lower(), None
    out: list[str] = []
    index: list[int] = []
    for i, ch in enumerate(text):
        if ch.isascii():
            out.append(ch.lower())
            index.append(i)
            continue
        for c in unicodedata.normalize("NFKD", ch):
            if c in _INVISIBLE or unicodedata.category(c) in ("Cf", "Mn", "Me"):
                continue
            for f in c.casefold().translate(_CONFUSABLES):
                out.append(f)
                index.append(i)
    return "".join(out), index


# -- patterns --------------------------------------------------------------------------
# Written against lower-case normalized text. `_SEP` is the gap between two words: any
# run of non-word characters, so spacing, newlines and markdown do not matter.

_SEP = r"[\W_]+"
_QUAL = r"(?:previous|prior|preceding|above|earlier|former|foregoing|original|initial)"
_NOUN = (
    r"(?:instructions?|prompts?|directions?|directives?|rules|guidelines|guidance"
    r"|constraints|context|programming)"
)
# Filler words allowed between the verb and the qualifier: "ignore any and all of the".
_FILL = rf"(?:(?:all|any|and|of|the|your|my|these|those|that|this|every|everything){_SEP}){{0,5}}"
_SECRETS = (
    r"(?:credentials?|secrets?|api[\W_]*keys?|access[\W_]*keys?|private[\W_]*keys?|tokens?"
    r"|passwords?|passwd|ssh[\W_]*keys?|~/\.ssh\S*|\.ssh\b|\.env\b|id_rsa|id_ed25519|\.aws\b"
    r"|environment[\W_]+variables|env[\W_]+vars)"
)
# Where exfiltrated data goes: a URL, an address, "me", or a host name.
_DEST = (
    r"(?:https?://|\S+@[\w-]+\.\w|me\b|us\b|my\W+(?:server|email|address|endpoint|webhook)"
    r"|this\W+(?:url|address|endpoint|server|webhook|link|email)|the\W+following\W+(?:url|address|endpoint)"
    r"|[\w-]+(?:\.[\w-]+)+\.(?:com|net|org|io|ru|cn|xyz|sh|dev|app|site|me)\b)"
)
_LIMITS = (
    r"(?:restrictions?|limits|limitations|filters?|censorship|rules|guidelines|guardrails"
    r"|boundaries|ethics|morals|constraints|safety)"
)
_ASSISTANT = r"(?:the\W+)?(?:user|human)s?"

BUILTIN_PATTERNS: tuple[tuple[str, str], ...] = (
    # "Ignore all previous instructions", "disregard the prior rules", "forget the above".
    (
        "ignore previous instructions",
        rf"\b(?:ignore|disregard|forget|overlook|neglect)"
        rf"{_SEP}{_FILL}{_QUAL}{_SEP}(?:(?:two|few|\d+){_SEP})?{_NOUN}\b",
    ),
    (
        "ignore the above",
        rf"\b(?:ignore|disregard|forget){_SEP}(?:all{_SEP}(?:of{_SEP})?)?(?:the{_SEP})?(?:above|preceding){_SEP}(?:and|text|content)\b",
    ),
    (
        "ignore your instructions",
        rf"\b(?:ignore|disregard|forget|override|bypass){_SEP}(?:(?:all|any|of|about){_SEP}){{0,2}}"
        rf"(?:your|the{_SEP}system(?:'s)?){_SEP}(?:(?:previous|prior|original|current|existing|initial|safety|core){_SEP})?"
        rf"(?:instructions|prompt|rules|guidelines|programming|training|directives|guardrails)\b",
    ),
    (
        "disregard instructions",
        rf"\bdisregard{_SEP}(?:[\w']+{_SEP}){{0,3}}?(?:instructions|directives|guardrails|system{_SEP}prompt)\b",
    ),
    (
        "forget everything",
        rf"\bforget{_SEP}everything{_SEP}(?:above|before|you{_SEP}(?:were|have{_SEP}been){_SEP}told|you{_SEP}know)\b",
    ),
    # Role hijacks: "you are now DAN", "you are now in developer mode".
    (
        "you are now",
        rf"\byou{_SEP}are{_SEP}now{_SEP}(?:(?:a|an|the|in|my|called|named|acting{_SEP}as){_SEP})?"
        rf"(?:dan\b|developer{_SEP}mode|dev{_SEP}mode|god{_SEP}mode|jailbroken|jailbreak|unrestricted|unfiltered"
        rf"|uncensored|evil|no{_SEP}longer{_SEP}(?:an?{_SEP})?(?:ai|assistant|bound|restricted|chatgpt|claude))",
    ),
    ("do anything now", rf"\bdo{_SEP}anything{_SEP}now\b"),
    (
        "developer mode",
        rf"\b(?:enable|enter|activate|switch{_SEP}to){_SEP}(?:the{_SEP})?(?:developer|dev|god|jailbreak|dan){_SEP}mode\b",
    ),
    (
        "unrestricted ai",
        rf"\b(?:unrestricted|unfiltered|uncensored){_SEP}(?:ai|mode|assistant|model|chatbot)\b",
    ),
    (
        "new instructions",
        rf"\b(?:new|real|actual){_SEP}(?:system{_SEP})?instructions?[ \t]*:",
    ),
    (
        "your new instructions",
        rf"\b(?:here{_SEP}are{_SEP})?your{_SEP}(?:new|real|actual|updated){_SEP}instructions\b",
    ),
    # System prompt exfiltration.
    (
        "reveal system prompt",
        rf"\b(?:reveal|print|show|display|output|repeat|dump|leak|tell{_SEP}me|give{_SEP}me|share|disclose"
        rf"|write{_SEP}out|recite|echo|expose){_SEP}(?:me{_SEP})?"
        rf"(?:(?:your|the|all|of|full|entire|complete|exact|verbatim|text|contents?){_SEP}){{0,4}}"
        rf"(?:system|initial|hidden|original|secret|developer){_SEP}(?:prompts?|instructions)\b",
    ),
    (
        "what is your system prompt",
        rf"\bwhat{_SEP}(?:is|are|was|were){_SEP}your{_SEP}(?:system{_SEP}prompt|(?:initial|original|hidden){_SEP}instructions)\b",
    ),
    # Safety overrides.
    (
        "override safety rules",
        rf"\b(?:override|bypass|circumvent|disable|ignore|turn{_SEP}off|deactivate|get{_SEP}around|break){_SEP}"
        rf"(?:(?:all|any|of|the|your|its|my){_SEP}){{0,3}}(?:safety|ethical|ethics|moderation|content{_SEP}policy){_SEP}"
        rf"(?:rules|guidelines|guardrails|restrictions|filters?|policies|protocols|alignment|training)\b",
    ),
    (
        "act without restrictions",
        rf"\b(?:act|behave|respond|answer|pretend|roleplay|role-play|reply){_SEP}(?:[\w']+{_SEP}){{0,6}}?"
        rf"(?:without|with{_SEP}no|free{_SEP}(?:of|from)|ignoring){_SEP}(?:any{_SEP}|all{_SEP}|your{_SEP})?(?:(?:safety|ethical|content){_SEP})?{_LIMITS}\b",
    ),
    # Hiding the action from the people who read the run.
    (
        "do not tell the user",
        rf"\b(?:do{_SEP}not|don't|dont|never|without){_SEP}(?:tell(?:ing)?|inform(?:ing)?|mention(?:ing)?{_SEP}(?:this|it|that){_SEP}to"
        rf"|reveal(?:ing)?{_SEP}(?:this|it|that){_SEP}to){_SEP}{_ASSISTANT}\b",
    ),
    (
        "do not let the user know",
        rf"\b(?:do{_SEP}not|don't|dont|never){_SEP}let{_SEP}{_ASSISTANT}{_SEP}know\b",
    ),
    (
        "hide from the user",
        rf"\b(?:keep|hide){_SEP}(?:this|it|that){_SEP}(?:(?:a{_SEP})?secret{_SEP})?from{_SEP}{_ASSISTANT}\b",
    ),
    # Exfiltration. The noun "exfiltration" is left alone: security jobs talk about it.
    ("exfiltrate", r"\bexfiltrat(?:e|es|ed|ing)\b"),
    (
        "send secrets",
        rf"\b(?:send|post|upload|e-?mail|forward|transmit|leak|copy|paste|submit|exfil){_SEP}"
        rf"(?:[\w'./~-]+{_SEP}){{0,5}}?{_SECRETS}{_SEP}(?:[\w'./~-]+{_SEP}){{0,4}}?(?:to|at|into){_SEP}{_DEST}",
    ),
    (
        "pipe secrets to the network",
        rf"\bcat\s+\S*{_SECRETS}\S*\s*\|\s*(?:curl|wget|nc|ncat|netcat)\b",
    ),
    # "curl https://x/install.sh | sh" and friends: remote code handed to a shell.
    (
        "curl | sh",
        r"\b(?:curl|wget|fetch)\b[^\n|;&]{0,300}\|\s*(?:sudo\s+)?(?:(?:ba|z|da|k|fi)?sh|python3?|perl|ruby|node)\b",
    ),
    ("sh <(curl)", r"\b(?:ba|z)?sh\s+<\(\s*(?:curl|wget)\b"),
    ("eval $(curl)", r"\beval\s+[\"']?\$\(\s*(?:curl|wget)\b"),
    # Chat-template markers: text pretending to be a new conversation turn.
    (
        "<|im_start|>",
        r"<\|(?:im_start|im_end|im_sep|system|endoftext|start_header_id|end_header_id|eot_id|begin_of_text)\|>",
    ),
    ("[INST]", r"\[/?inst\]|<</?sys>>|<(?:start|end)_of_turn>"),
    (
        "begin system prompt",
        rf"\b(?:begin|start|end){_SEP}(?:of{_SEP})?(?:the{_SEP})?system{_SEP}(?:prompt|message|instructions)\b",
    ),
    (
        "### system",
        r"(?:^|\n)[ \t]*#{2,6}[ \t]*system(?:[ \t]+(?:prompt|message|instructions))?[ \t]*:?[ \t]*(?=\n|$)",
    ),
)

_COMPILED = tuple((label, re.compile(rx)) for label, rx in BUILTIN_PATTERNS)

# -- characters refused outright ---------------------------------------------------------

_SMUGGLING = re.compile("[\U000e0000-\U000e007f]")
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")

# -- squeezed: letters and digits only, leetspeak read as letters ------------------------
# l, 1, |, ! and i all read as "i" (so "a11" is "aii", like "all" once folded).
_LEET = str.maketrans({"0": "o", "1": "i", "l": "i", "3": "e", "4": "a", "5": "s", "7": "t",
                       "@": "a", "$": "s", "|": "i", "!": "i", "8": "b", "9": "g"})  # fmt: skip


def _sq(words: str) -> str:
    """A squeezed alternation from ``a b|c d``: each alternative with spaces removed and
    folded the way the text is."""
    return "(?:" + "|".join(w.replace(" ", "").translate(_LEET) for w in words.split("|")) + ")"


_SQ_FILL = _sq("all|any|and|of|the|your|my|these|those|every")
_SQUEEZED: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (label, re.compile(rx))
    for label, rx in (
        (
            "ignore previous instructions",
            _sq("ignore|disregard|forget") + f"{_SQ_FILL}{{0,4}}"
            + _sq("previous|prior|preceding|above|earlier")
            + _sq("instructions|instruction|prompts|prompt|directions|directives|rules|guidelines"),
        ),
        (
            "ignore your instructions",
            _sq("ignore|disregard|forget|override|bypass") + _sq("all|any") + "?" + _sq("your")
            + _sq("instructions|rules|guidelines|programming|guardrails"),
        ),
        ("you are now dan", _sq("you are now") + _sq("dan|in developer mode|developer mode|jailbroken|unrestricted|unfiltered")),
        ("do anything now", _sq("do anything now")),
        ("developer mode", _sq("enable|enter|activate") + _sq("the") + "?" + _sq("developer mode|dev mode|god mode|jailbreak mode")),
        ("reveal system prompt", _sq("reveal|print|show|dump|leak|output|repeat") + _sq("me") + "?" + f"{_SQ_FILL}{{0,2}}" + _sq("system prompt|initial instructions|hidden instructions")),
        ("exfiltrate", _sq("exfiltrate")),
        ("override safety rules", _sq("override|bypass|disable|ignore") + f"{_SQ_FILL}{{0,2}}" + _sq("safety|ethical|content policy") + _sq("rules|guidelines|guardrails|filters|restrictions")),
    )
)


def _squeeze(norm: str) -> tuple[str, list[int]]:
    """The normalized text with everything but letters and digits dropped and leetspeak
    folded, with a map back to indexes in ``norm``."""
    out: list[str] = []
    back: list[int] = []
    for i, ch in enumerate(norm):
        if ch.isalnum() or ch in "@$|!":
            out.append(ch.translate(_LEET))
            back.append(i)
    return "".join(out), back


def _squeezed_match(norm: str) -> tuple[int, int, str] | None:
    """The earliest squeezed match whose ends are word ends in ``norm`` (so "you are now
    Dana's" is not "you are now DAN"): (start, end) in ``norm``, and its label."""
    squeezed, back = _squeeze(norm)
    best: tuple[int, int, str] | None = None
    for label, rx in _SQUEEZED:
        for m in rx.finditer(squeezed):
            start, end = back[m.start()], back[m.end() - 1] + 1
            if (start > 0 and norm[start - 1].isalnum()) or (end < len(norm) and norm[end].isalnum()):
                continue
            if best is None or start < best[0]:
                best = (start, end, label)
            break
    return best


# -- other languages, on the case-folded text ---------------------------------------------
_W = r"[\W_]+"
_FOREIGN_PATTERNS: tuple[tuple[str, str], ...] = (
    # German
    ("ignoriere alle vorherigen anweisungen",
     rf"\b(?:ignoriere|ignorieren\s+sie|vergiss|vergessen\s+sie|missachte){_W}(?:(?:alle|die|deine|ihre|bisherigen|obigen){_W}){{0,3}}(?:vorherigen|vorigen|bisherigen|obigen|fr(?:ü|ue)heren|vorangegangenen){_W}(?:anweisungen|instruktionen|befehle|regeln|vorgaben)\b"),
    ("du bist jetzt", rf"\bdu{_W}bist{_W}(?:jetzt|nun|ab{_W}sofort){_W}(?:dan|im{_W}entwicklermodus|uneingeschr(?:ä|ae)nkt)"),
    ("gib deinen systemprompt aus",
     rf"\b(?:gib|zeige?|verrate|nenne)(?:{_W}mir)?{_W}(?:deinen|den|deine|die){_W}(?:system[-\s]?prompt|systemanweisungen|versteckten{_W}anweisungen)\b"),
    # French
    ("ignore les instructions précédentes",
     rf"\b(?:ignore[sz]?|oublie[sz]?|n[eé]glige[sz]?){_W}(?:(?:toutes|tous|les|tes|vos|des|consignes|instructions){_W}){{0,3}}(?:instructions|consignes|r[eè]gles|directives){_W}(?:pr[ée]c[ée]dentes|ant[ée]rieures|ci[-\s]dessus)\b"),
    ("révèle ton prompt système",
     rf"\b(?:r[ée]v[eè]le|affiche|montre|donne)[sz]?(?:{_W}moi)?{_W}(?:ton|votre|le|tes|vos){_W}(?:prompt{_W}syst[eè]me|instructions{_W}(?:syst[eè]me|cach[ée]es))\b"),
    # Spanish, Italian, Portuguese (shared words)
    ("ignora las instrucciones anteriores",
     rf"\b(?:ignora|ignore|ignorar|olvida|esquece|esque[çc]a|dimentica|descarta){_W}(?:(?:todas|todos|tutte|tutti|las|los|le|as|os|tus|suas|tuas|sus|le|gli|istruzioni|instrucciones|instru[çc][õo]es){_W}){{0,3}}(?:instrucciones|istruzioni|instru[çc][õo]es|indicaciones|regras|reglas|regole|ordens|[óo]rdenes){_W}(?:anteriores|precedentes|precedenti|previas|pr[ée]vias|sopra|arriba)\b"),
    ("revela tu prompt del sistema",
     rf"\b(?:revela|muestra|mostra|rivela|mostrami|dime|diga){_W}(?:me{_W})?(?:tu|el|il|o|seu|teu|tuo){_W}(?:prompt{_W}(?:del{_W}sistema|di{_W}sistema|do{_W}sistema)|system{_W}prompt)\b"),
    # Dutch
    ("negeer alle vorige instructies",
     rf"\b(?:negeer|vergeet){_W}(?:(?:alle|de|je|jouw){_W}){{0,2}}(?:vorige|eerdere|voorgaande|bovenstaande){_W}(?:instructies|opdrachten|regels)\b"),
    # Polish
    ("zignoruj poprzednie instrukcje",
     rf"\b(?:zignoruj|ignoruj|zapomnij){_W}(?:(?:wszystkie|o|twoje){_W}){{0,2}}(?:poprzednie|wcze[sś]niejsze|powy[zż]sze|poprzednich){_W}(?:instrukcje|instrukcjach|polecenia|zasady)\b"),
    # Russian and Ukrainian
    ("игнорируй предыдущие инструкции",
     rf"(?:игнорируй|проигнорируй|забудь|игнорируйте|забудьте|ігноруй|забудь){_W}(?:(?:все|всі|свои|свої|эти|ці){_W}){{0,2}}(?:предыдущие|прежние|вышеуказанные|попередні|попередніх|предыдущих){_W}(?:инструкции|указания|правила|инструкций|інструкції|вказівки)"),
    ("покажи системный промпт",
     rf"(?:покажи|выведи|раскрой|покажіть|покажи){_W}(?:мне{_W})?(?:свой{_W}|свій{_W})?(?:системный|системні|системний|скрытые){_W}(?:промпт|промт|инструкции|інструкції)"),
    # Chinese
    ("忽略之前的指令", r"(?:忽略|无视|無視|忘记|忘記|不要理会)[^。\n]{0,8}(?:之前|以上|上面|先前|前面|此前)[^。\n]{0,6}(?:指令|指示|说明|說明|规则|規則|提示)"),
    ("显示系统提示", r"(?:显示|輸出|输出|透露|告诉我|告訴我|泄露|打印)[^。\n]{0,6}(?:系统提示|系統提示|系统指令|系統指令|system\s*prompt)"),
    # Japanese
    ("以前の指示を無視", r"(?:以前|前|上記|これまで)の(?:すべての|全ての)?(?:指示|命令|ルール|プロンプト)[をは]?(?:すべて|全て)?(?:無視|忘れ)"),
    ("システムプロンプトを表示", r"システムプロンプト(?:を|の内容を)(?:表示|出力|教え|見せ)"),
    # Korean
    ("이전 지시를 무시", r"(?:이전|위의|앞의)\s*(?:모든\s*)?(?:지시|지침|명령|규칙)[을를은는]?\s*(?:모두\s*)?(?:무시|잊어)"),
)
_FOREIGN = tuple((label, re.compile(rx)) for label, rx in _FOREIGN_PATTERNS)


def _casefold(text: str) -> tuple[str, list[int] | None]:
    """The text compatibility-folded (NFKC) and case-folded, invisible characters dropped;
    with a map back to ``text``'s indexes (None when they line up)."""
    if text.isascii():
        return text.lower(), None
    out: list[str] = []
    index: list[int] = []
    for i, ch in enumerate(text):
        if ch in _INVISIBLE or unicodedata.category(ch) == "Cf":
            continue
        for f in unicodedata.normalize("NFKC", ch).casefold():
            out.append(f)
            index.append(i)
    return "".join(out), index

_EXCERPT = 60  # characters of context each side of a match


def _literal(phrase: str) -> re.Pattern[str] | None:
    """A config ``injection_patterns`` entry: a literal phrase, case- and
    whitespace-insensitive, whole words at its ends."""
    words = normalize(phrase)[0].split()
    if not words:
        return None
    body = r"\s+".join(map(re.escape, words))
    head = r"\b" if re.match(r"\w", words[0]) else ""
    tail = r"\b" if re.search(r"\w$", words[-1]) else ""
    return re.compile(head + body + tail)


def scan(
    sections: Sequence[tuple[str, str]], extra_patterns: Sequence[str] = ()
) -> GuardMatch | None:
    """The first injection phrase in ``sections`` ((source, text) pairs, scanned in
    order; within a section the earliest match wins), or None."""
    patterns = list(_COMPILED)
    for phrase in extra_patterns:
        rx = _literal(phrase)
        if rx is not None:
            patterns.append((phrase, rx))
    for source, text in sections:
        if not text:
            continue
        hit = _scan_one(text, patterns)
        if hit is not None:
            phrase, start, end = hit
            return GuardMatch(phrase, source, _excerpt(text, start, end))
    return None


def _scan_one(
    text: str, patterns: Sequence[tuple[str, re.Pattern[str]]]
) -> tuple[str, int, int] | None:
    """The earliest match in one section: (phrase, start, end in ``text``)."""
    if not text.isascii():
        for rx, what in ((_SMUGGLING, "invisible tag characters"), (_BIDI, "bidi control characters")):
            m = rx.search(text)
            if m:
                return f"{what} (U+{ord(m.group(0)):04X})", m.start(), m.end()
    found: list[tuple[int, int, str]] = []  # (start, end) in text, phrase
    norm, index = normalize(text)

    def back(idx: list[int] | None, start: int, end: int) -> tuple[int, int]:
        return (idx[start], idx[end - 1] + 1) if idx is not None else (start, end)

    best: re.Match[str] | None = None
    for _label, rx in patterns:
        m = rx.search(norm)
        if m and (best is None or m.start() < best.start()):
            best = m
    if best is not None:
        found.append((*back(index, best.start(), best.end()), " ".join(best.group(0).split())))
    sq = _squeezed_match(norm)
    if sq is not None:
        found.append((*back(index, sq[0], sq[1]), sq[2]))
    folded, f_index = _casefold(text)
    for _label, rx in _FOREIGN:
        m = rx.search(folded)
        if m:
            found.append((*back(f_index, m.start(), m.end()), " ".join(m.group(0).split())))
    if not found:
        return None
    start, end, phrase = min(found)
    return phrase, start, end


def _excerpt(text: str, start: int, end: int) -> str:
    lo, hi = max(0, start - _EXCERPT), min(len(text), end + _EXCERPT)
    piece = "".join(
        c for c in text[lo:hi] if c not in _INVISIBLE and unicodedata.category(c) != "Cf"
    )
    piece = " ".join(piece.split())
    return ("…" if lo > 0 else "") + piece + ("…" if hi < len(text) else "")
