"""Pictures and widgets: viz (tokens, rotary, attention maps, distributions), bertviz_views (bertviz, offline too),
widgets (the sampler: temperature and top-p sliders), explorer (a widget over the activations), memory (what fits
where). Needs the notebook extras (matplotlib, ipywidgets, bertviz); the model does not."""
