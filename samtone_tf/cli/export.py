"""The ``samtone export`` command."""

from __future__ import annotations


from samtone_tf.cli.models import model_inputs, pretrained_model
from samtone_tf.export.saved_model import check_export_output, export_saved_model
from samtone_tf.runs.job import load_run_model


def export_command(args):
    check_export_output(args.output, model_inputs(args.checkpoint or args.pretrained),
                        args.overwrite)  # before the model is built
    if args.checkpoint:
        model, config = load_run_model(args.checkpoint)
    else:
        model = pretrained_model(args.pretrained, args.architecture, args.query_max_length,
                                  args.document_max_length, args.pooling, args.query_prompt,
                                  args.document_prompt)
        config = {"pretrained": args.pretrained, "zero_shot": True}
    path = export_saved_model(model, args.output, training_config=config,
                              overwrite=args.overwrite)
    print(f"exported {model.architecture} ({model.embedding_dim}-d) to {path}")
    return 0
