"""`edgex run pipeline.yaml`: a strictly validated config, executed as convert x bench x eval x report."""
