#!/usr/bin/perl
# openapi-validate.pl FILE... - check OpenAPI 3.0 documents with Perl's
# JSON::Validator (Debian libjson-validator-perl):
#   - the document against the OpenAPI 3.0 specification's JSON Schema
#     (https://spec.openapis.org/oas/3.0/schema/2019-04-02, from Debian's
#     openapi-specification package through JSON::Validator's cache, so
#     nothing is fetched), strictly: no coercion of numbers to strings;
#   - every $ref resolved (JSON::Validator::Schema::OpenAPIv3);
#   - what the specification says in words, not in its schema: each path
#     template's {name} declared as an `in: path` parameter of every
#     operation on it and nothing else declared `in: path`; operationIds
#     unique.
# Prints each problem on a line as "FILE: problem"; exit 0 when every file
# is valid, else 1 (a file that cannot be read, is not JSON or has a $ref
# that does not resolve counts as invalid).
use strict;
use warnings;
use JSON::Validator;
use JSON::Validator::Schema::OpenAPIv3;
use Mojo::File qw(path);
use Mojo::JSON qw(decode_json);

die "usage: $0 FILE...\n" unless @ARGV;

# The specification's schema, strict (OpenAPIv3->errors coerces numbers
# and strings into each other).
my $spec = JSON::Validator->new->schema(JSON::Validator::Schema::OpenAPIv3->new->specification)->schema;
# Draft 4 knows no `uri-reference` (the specification's $ref values): no
# blanks, no control characters.
$spec->formats->{'uri-reference'} = sub { $_[0] =~ /[\s\x00-\x1f]/ ? 'Not a URI reference.' : undef };

my $bad = 0;
for my $file (@ARGV) {
        my @errors = check($file);
        print "$file: $_\n" for @errors;
        $bad ||= @errors > 0;
}
exit($bad ? 1 : 0);

sub check {
        my ($file) = @_;
        my $data = eval { decode_json(path($file)->slurp) };
        return "not JSON: " . ($@ =~ s/\s+$//r) unless $data;
        return "not an OpenAPI 3.0.x document"
                unless ref $data eq 'HASH' && ($data->{openapi} // '') =~ /^3\.0\.\d+$/;
        # Resolving checks every $ref (it dies on one that does not resolve).
        my $oas = eval { JSON::Validator::Schema::OpenAPIv3->new($data) };
        return "cannot resolve: " . ($@ =~ s/\s+$//r) unless $oas;
        my @errors = map {"$_"} $spec->validate($data);

        # A parameter, its $ref (to #/components/parameters/...) followed.
        my $param = sub {
                my ($p) = @_;
                while (ref $p eq 'HASH' && $p->{'$ref'}) {
                        my ($name) = $p->{'$ref'} =~ m{^#/components/parameters/(.+)$} or return undef;
                        $p = $data->{components}{parameters}{$name};
                }
                return ref $p eq 'HASH' ? $p : undef;
        };
        my %ids;
        my $paths = ref $data->{paths} eq 'HASH' ? $data->{paths} : {};
        for my $p (sort keys %$paths) {
                my $item = $paths->{$p};
                next unless ref $item eq 'HASH';
                my %want = map { $_ => 1 } $p =~ /\{([^}]+)\}/g;
                my @common = @{$item->{parameters} // []};
                for my $m (grep { /^(get|put|post|delete|options|head|patch|trace)$/ } sort keys %$item) {
                        my $op = $item->{$m};
                        next unless ref $op eq 'HASH';
                        my %have;
                        for my $q (@common, @{$op->{parameters} // []}) {
                                my $pp = $param->($q);
                                next unless $pp && ($pp->{in} // '') eq 'path';
                                $have{$pp->{name}} = 1;
                                push @errors, "$m $p: path parameter `$pp->{name}` is not in the path"
                                        unless $want{$pp->{name}};
                        }
                        push @errors, "$m $p: `{$_}` is not declared as a path parameter"
                                for grep { !$have{$_} } sort keys %want;
                        if (my $id = $op->{operationId}) {
                                push @errors, "$m $p: operationId `$id` is also that of $ids{$id}" if $ids{$id};
                                $ids{$id} //= "$m $p";
                        }
                }
        }
        return @errors;
}
