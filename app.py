"""LaME demo (placeholder page until the app issue lands): loads the default model and embeds text."""

from __future__ import annotations

import argparse

import gradio as gr

from lame_tools import DEFAULT_MODEL_DIR, load_model


def build_app(model_dir: str | None = None) -> gr.Blocks:
    model = load_model(model_dir)

    def embed_text(text: str) -> str:
        """Embed a text with the loaded model and show the first values."""
        try:
            vector = model.encode(texts=[text])[0]
        except Exception as exc:  # noqa: BLE001
            raise gr.Error(str(exc)) from None
        return f"{len(vector)}-d unit vector: " + ", ".join(f"{v:+.3f}" for v in vector[:8]) + ", ..."

    with gr.Blocks(title="LaME") as demo:
        gr.Markdown("# LaME: latent reasoning multimodal embeddings")
        text = gr.Textbox(label="text", value="a red circle")
        out = gr.Textbox(label="embedding")
        gr.Button("Embed").click(embed_text, text, out, api_name="embed_text")
    return demo


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=str(DEFAULT_MODEL_DIR))
    args = parser.parse_args()
    build_app(args.model).launch()
