"""Commands understood without a model: sentence templates per language, then the nearest template by meaning.

"Set a timer for five minutes for the pasta" must work with any model, even a
tiny one that cannot call functions, and at once. See :mod:`.parser`.
"""

from .model import Intent
from .parser import IntentParser, language_of, parse

__all__ = ["Intent", "IntentParser", "language_of", "parse"]
