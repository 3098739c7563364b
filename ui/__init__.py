"""The Gradio WebUI, mounted on the same FastAPI app as the REST API."""
