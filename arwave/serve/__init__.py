"""`arwave serve`: a one-page web app that plays audio while a model generates it.

`create_app(ServeSettings(...))` builds the Starlette app (arwave/serve/app.py); `available_models(root)`
lists what it may serve. The page (page.html) is plain HTML + JS with no build step.
"""

from arwave.serve.app import ServeSettings, available_models, bundled_names, create_app

__all__ = ["ServeSettings", "available_models", "bundled_names", "create_app"]
